"""The one exception tree of fleetlab; every error a user can cause has a stable ``code``."""

from __future__ import annotations


class FleetlabError(Exception):
    """Raised when anything in fleetlab fails in a way it can name."""

    code = "INTERNAL_ERROR"


class ConfigError(FleetlabError):
    """Raised when configuration (environment, services file) is missing or invalid."""

    code = "CONFIG_ERROR"


class RequestError(FleetlabError):
    """Raised when a request cannot be served as sent; the client gets an error response."""

    code = "BAD_REQUEST"


class MalformedRequest(RequestError):
    """Raised when a message body is not well-formed XML."""

    code = "MALFORMED_XML"


class ForbiddenMarkup(RequestError):
    """Raised when a request carries a DTD, entity declarations or processing it must refuse."""

    code = "DTD_FORBIDDEN"


class InvalidRequest(RequestError):
    """Raised when a request violates the request schema (wrong root, missing parts)."""

    code = "INVALID_REQUEST"


class OversizeRequest(RequestError):
    """Raised when a message body is larger than the configured limit."""

    code = "REQUEST_TOO_LARGE"


class UnknownService(RequestError):
    """Raised when a request names a service the registry does not have."""

    code = "UNKNOWN_SERVICE"


class ParameterRejected(RequestError):
    """Raised when a parameter is not on the service's allow-list or its value is out of bounds."""

    code = "PARAMETER_REJECTED"


class MissingInput(RequestError):
    """Raised when a service needs an input and the request names none."""

    code = "MISSING_INPUT"


class UrlRejected(RequestError):
    """Raised when an outbound URL (input, callback, redirect) fails the URL policy."""

    code = "URL_REJECTED"


class FetchError(RequestError):
    """Raised when a request's input cannot be fetched (unreachable, refused, too slow)."""

    code = "INPUT_UNAVAILABLE"


class InputTooLarge(FetchError):
    """Raised when an input is larger than the configured limit."""

    code = "INPUT_TOO_LARGE"


class ExecutionError(RequestError):
    """Raised when the service's binary fails (non-zero exit, killed by a signal)."""

    code = "BINARY_FAILED"


class BinaryCrashed(ExecutionError):
    """Raised when the binary is killed by a signal: perhaps the request (a poison input), perhaps
    the machine (the OOM killer, a dying host). Retried on later receives; answered on the last."""

    code = "BINARY_CRASHED"


class ExecutionTimeout(ExecutionError):
    """Raised when the service's binary runs past its time limit and is killed."""

    code = "BINARY_TIMEOUT"


class DeliveryError(FleetlabError):
    """Raised when a response cannot be delivered (callback refused, unreachable, queue error)."""

    code = "DELIVERY_FAILED"


class ClaimLost(FleetlabError):
    """Raised when a worker's claim was taken over; its result must not be published."""

    code = "CLAIM_LOST"


class ClaimBusy(FleetlabError):
    """Raised when another worker holds a live claim on the same request."""

    code = "CLAIM_BUSY"

    def __init__(self, message: str, retry_after: float) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class StoreError(FleetlabError):
    """Raised when the state store fails in a way other than a lost conditional write."""

    code = "STORE_ERROR"


class PreconditionFailed(StoreError):
    """Raised when a conditional write (IfNoneMatch / IfMatch) loses against another writer."""

    code = "PRECONDITION_FAILED"
