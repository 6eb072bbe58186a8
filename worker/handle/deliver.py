"""Deliver a response: HTTP POST callback (basic auth, retried with backoff) or the response queue.

A callback is retried on network errors, 5xx and 429, with capped exponential backoff and full
jitter; other 4xx answers are final. Every attempt carries the same body and the same
``X-Fleetlab-Message-Id``, so a receiver can drop repeats.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from dataclasses import dataclass

from worker.backoff import backoff_delay
from worker.config import Limits, Retry
from worker.consume.queue import RequestQueue
from worker.errors import DeliveryError, UrlRejected
from worker.handle.request import OutputSpec
from worker.net.http import SafeHttp

_RETRYABLE = {408, 425, 429}


@dataclass(frozen=True)
class Delivery:
    """Where a response went and how many attempts it took."""

    target: str
    attempts: int


class Deliverer:
    """Sends responses where their request asked."""

    def __init__(
        self,
        http: SafeHttp,
        queue: RequestQueue,
        retry: Retry,
        limits: Limits,
        sleep: Callable[[float], None] = time.sleep,
        draw: Callable[[], float] = random.random,
    ) -> None:
        self._http = http
        self._queue = queue
        self._retry = retry
        self._limits = limits
        self._sleep = sleep
        self._draw = draw

    def deliver(self, output: OutputSpec, body: bytes, message_id: str) -> Delivery:
        """Deliver ``body``; raise ``DeliveryError`` once the retry budget is spent."""
        if output.type == "queue" or output.url is None:
            self._queue.send_response(body)
            return Delivery(target="queue", attempts=1)
        return self._callback(output, body, message_id)

    def _callback(self, output: OutputSpec, body: bytes, message_id: str) -> Delivery:
        assert output.url is not None
        auth = (
            (output.credentials.username, output.credentials.password)
            if output.credentials
            else None
        )
        headers = {"Content-Type": "application/xml", "X-Fleetlab-Message-Id": message_id}
        last = ""
        for attempt in range(self._retry.attempts):
            if attempt:
                self._sleep(backoff_delay(attempt - 1, self._retry, self._draw()))
            try:
                result = self._http.post(
                    output.url,
                    body,
                    headers=headers,
                    auth=auth,
                    timeout_s=self._limits.callback_timeout_s,
                    max_response_bytes=self._limits.max_callback_response_bytes,
                )
            except UrlRejected as exc:
                # Checked at parse time; refused now means its DNS changed. Final, not retried.
                raise DeliveryError(f"callback URL refused: {exc}") from None
            except DeliveryError as exc:
                last = str(exc)
                continue
            if 200 <= result.status < 300:
                return Delivery(target="callback", attempts=attempt + 1)
            last = f"callback answered HTTP {result.status}"
            if result.status < 500 and result.status not in _RETRYABLE:
                break
        raise DeliveryError(f"{last} (after {attempt + 1} attempts)")
