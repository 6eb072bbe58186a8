"""Small pure policies and formats: backoff, activity lines, secret scrubbing, configuration."""

from __future__ import annotations

import pytest

from worker.backoff import backoff_delay
from worker.config import Retry, load_worker_config
from worker.errors import ConfigError
from worker.state.activity import Event, scrub

RETRY = Retry(attempts=5, base_s=0.5, cap_s=4.0)


@pytest.mark.parametrize(("attempt", "ceiling"), [(0, 0.5), (1, 1.0), (2, 2.0), (3, 4.0), (9, 4.0)])
def test_backoff_is_capped_exponential_with_full_jitter(attempt: int, ceiling: float) -> None:
    assert backoff_delay(attempt, RETRY, 0.0) == 0.0
    assert backoff_delay(attempt, RETRY, 0.999999) == pytest.approx(ceiling, rel=1e-3)
    assert backoff_delay(attempt, RETRY, 0.5) == pytest.approx(ceiling / 2)


@pytest.mark.parametrize(
    "text",
    [
        "fetch http://dirk:mylilsecret@host/x",
        "password=mylilsecret",
        'password: "mylilsecret"',
        '{"password": "mylilsecret"}',
        "url?token=mylilsecret&x=1",
    ],
)
def test_secrets_are_scrubbed(text: str) -> None:
    assert "mylilsecret" not in scrub(text)


def test_activity_line_is_common_log_format_like() -> None:
    line = Event("ran", "worker-1", 0.0, "m-1", "r-1", "analyze", "ok", 6.012, 'say "hi"').line()
    assert line == (
        'worker-1 m-1 r-1 [01/Jan/1970:00:00:00 +0000] "ran analyze" ok 6.012 "say \\"hi\\""'
    )


BASE = {
    "FLEETLAB_REQUEST_QUEUE_URL": "q",
    "FLEETLAB_RESPONSE_QUEUE_URL": "r",
    "FLEETLAB_BUCKET": "b",
    "FLEETLAB_LOG_GROUP": "g",
}


def test_lab_allows_loopback_urls_aws_does_not() -> None:
    assert load_worker_config(BASE).url_policy.allow_loopback
    assert not load_worker_config(BASE | {"FLEETLAB_ENV": "aws"}).url_policy.allow_loopback


@pytest.mark.parametrize(
    "env",
    [
        {},
        BASE | {"FLEETLAB_ENV": "mars"},
        BASE | {"FLEETLAB_MAX_INPUT_BYTES": "lots"},
        BASE | {"FLEETLAB_VISIBILITY_TIMEOUT": "1"},
        BASE | {"FLEETLAB_ALLOW_PRIVATE_URLS": "maybe"},
    ],
)
def test_bad_configuration_is_refused(env: dict[str, str]) -> None:
    with pytest.raises(ConfigError):
        load_worker_config(env)
