"""Validate a request message once, at the edge, into a ``Job`` the run step trusts as it is.

Checks, in this order (the first that fails names the error response): the body (size, XML,
no DTD, the schema), the service, its parameters (rendered into argv), that an input is there
when the service needs one, the callback URL, and last the URL of the input to fetch. A message
that fails becomes a ``Rejected``: the error, and where its response may go — the callback only
if that URL passes the policy (checked here, once per message), else the response queue.

``SafeHttp`` still checks every hop when it connects (the first URL and each redirect): that is
defence in depth against DNS answers that change between this check and the connect, and the
only check a redirect target gets — not a second validation of the request.
"""

from __future__ import annotations

import re
import sys
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from urllib.parse import urlsplit

from worker.config import WorkerConfig
from worker.errors import FetchError, InvalidRequest, MissingInput, RequestError, UrlRejected
from worker.handle.request import (
    QUEUE_OUTPUT,
    InputSpec,
    OutputSpec,
    Request,
    parse_request,
    salvage_envelope,
)
from worker.handle.services import Registry, Service
from worker.net.urls import check_url, redact_url, system_resolver
from worker.state.claims import claim_key

_SUFFIX = re.compile(r"\.[A-Za-z0-9]{1,8}")


@dataclass(frozen=True)
class Job:
    """A request that passed every check: what to fetch, what to run, where to answer.

    ``fetch`` is the input to download (None when the service takes none); ``argv`` is final
    (parameters filtered, paths inside ``scratch``); ``request.output`` passed the URL policy.
    """

    message_id: str
    request: Request
    service: Service
    key: str  # the claim's idempotency key; also names the scratch directory
    scratch: Path
    fetch: InputSpec | None
    input_path: Path | None
    output_path: Path
    argv: tuple[str, ...]


@dataclass(frozen=True)
class Rejected:
    """A request that failed a check: the error, and the ids and output of its error response."""

    error: RequestError
    service: str | None
    request_id: str | None
    output: OutputSpec


def validate(
    body: bytes, message_id: str, config: WorkerConfig, registry: Registry
) -> Job | Rejected:
    """Check ``body`` once; return the ``Job`` to run or why it is ``Rejected``."""
    max_bytes = config.limits.max_request_bytes
    try:
        request = parse_request(body, max_bytes)
        service = registry.get(request.service)
        key = claim_key(message_id, request.request_id)
        scratch = config.work_dir / "jobs" / key
        given = request.input if service.needs_input else None
        input_path = scratch / f"input{_suffix(given.url)}" if given is not None else None
        output_path = scratch / f"result{service.output_suffix}"
        argv = service.argv(  # filters the parameters through the allow-list: the one check
            request.parameters,
            python=sys.executable,
            input_path=str(input_path or ""),
            output_path=str(output_path),
            speed=config.speed,
        )
        _require_input(request.input, service)
    except RequestError as exc:
        envelope = salvage_envelope(body, max_bytes)
        output = _callback_or_queue(envelope.output, config)
        return Rejected(exc, envelope.service, envelope.request_id, output)
    try:
        _check_callback(request.output, config)
    except UrlRejected as exc:
        envelope = salvage_envelope(body, max_bytes)
        # A refused callback URL is never contacted: its error goes to the queue.
        return Rejected(exc, envelope.service, envelope.request_id, QUEUE_OUTPUT)
    try:
        if given is not None:
            _check_input(given, config)
    except RequestError as exc:
        return Rejected(exc, service.name, request.request_id, request.output)
    return Job(
        message_id, request, service, key, scratch, given, input_path, output_path, tuple(argv)
    )


def _require_input(spec: InputSpec | None, service: Service) -> None:
    if service.needs_input and spec is None:
        raise MissingInput(f"service {service.name!r} needs an <input>")
    if spec is not None:
        scheme = spec.url.split(":", 1)[0].lower()
        expected = ("s3",) if spec.type == "s3" else ("http", "https")
        if scheme not in expected:
            raise InvalidRequest(f'<input type="{spec.type}"> needs a {expected[0]} URL')


def _check_input(spec: InputSpec, config: WorkerConfig) -> None:
    """The policy on an input that will be fetched (one given but not used is never contacted)."""
    if spec.type == "s3":
        check_url(spec.url, config.url_policy)  # bucket and key well-formed
        return

    def resolve(host: str, port: int) -> list[str]:
        # A host that does not resolve is an unavailable input, not a refused one.
        try:
            return system_resolver(host, port)
        except OSError as exc:
            reason = exc.strerror or type(exc).__name__
            raise FetchError(
                f"input URL {redact_url(spec.url)} failed: cannot resolve {host} ({reason})"
            ) from None

    check_url(spec.url, config.url_policy, resolve)


def _check_callback(output: OutputSpec, config: WorkerConfig) -> None:
    if output.url is not None:
        check_url(output.url, config.url_policy)


def _callback_or_queue(output: OutputSpec, config: WorkerConfig) -> OutputSpec:
    """The callback of a rejected request, if its URL passes the policy; else the queue."""
    try:
        _check_callback(output, config)
    except UrlRejected:
        return QUEUE_OUTPUT
    return output


def _suffix(url: str) -> str:
    found = _SUFFIX.fullmatch(PurePosixPath(urlsplit(url).path).suffix)
    return found.group(0) if found else ""
