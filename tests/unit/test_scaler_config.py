"""The scaler's stored settings and how an instance and its status become a policy ``Member``."""

from __future__ import annotations

import pytest

from worker.config import load_scaler_settings
from worker.errors import ConfigError
from worker.scaler.capacity import ScalerConfig
from worker.scaler.ec2 import Instance
from worker.scaler.loop import config_from, member, timed
from worker.state.status import Status

ENV = {
    "FLEETLAB_REQUEST_QUEUE_URL": "http://q",
    "FLEETLAB_BUCKET": "b",
    "FLEETLAB_LOG_GROUP": "g",
}


def test_a_document_becomes_the_policy_settings() -> None:
    config = config_from({"min_instances": 1, "max_instances": 4, "slo_p95_s": 30, "job_s": 2.5})
    assert config == ScalerConfig(min_instances=1, max_instances=4, slo_p95_s=30.0, job_s=2.5)
    assert isinstance(config.slo_p95_s, float)


@pytest.mark.parametrize(
    ("doc", "words"),
    [
        ({"max": 3}, "unknown setting(s) max"),
        ({"min_instances": 1.5}, "min_instances must be an integer"),
        ({"min_instances": True}, "min_instances must be an integer"),
        ({"slo_p95_s": "900"}, "slo_p95_s must be a number"),
        ({"min_instances": 5, "max_instances": 2}, "min (5) <= max (2)"),
        ({"stale_after_s": 0}, "stale_after_s must be positive"),
        ({"spot_fraction": 1.5}, "spot_fraction must be between 0 and 1"),
        ({"spot_fraction": -0.1}, "spot_fraction must be between 0 and 1"),
        ({"spot_fraction": "half"}, "spot_fraction must be a number"),
        ({"spot_fallback_after": 1.5}, "spot_fallback_after must be an integer"),
        ({"spot_fallback_after": -1}, "spot_fallback_after must not be negative"),
        ({"spot_fallback_window_s": 0}, "spot_fallback_window_s must be positive"),
    ],
)
def test_a_bad_document_is_named_clearly(doc: dict[str, object], words: str) -> None:
    with pytest.raises(ConfigError, match=r"scaler/config\.json") as caught:
        config_from(doc)
    assert words in str(caught.value)


def test_an_instance_without_status_is_booting() -> None:
    found = member(Instance("i-1", "pending", "", "", launched_at=10.0), None)
    assert found.state == "booting" and found.heartbeat_at is None and found.launched_at == 10.0


def test_an_instance_with_status_carries_state_heartbeat_drain_and_slots() -> None:
    doc = {"state": "busy", "heartbeat_at": 99.5, "drain_requested": {"token": 2}, "slots": 4}
    found = member(Instance("i-1", "running", "", "", 10.0), Status.from_doc(doc))
    assert (found.state, found.heartbeat_at, found.drain_requested) == ("busy", 99.5, True)
    assert found.slots == 4
    odd = Status.from_doc({"state": "??", "heartbeat_at": "x"})
    odd = member(Instance("i-2", "running", "", "", 10.0), odd)
    assert odd.state == "busy" and odd.heartbeat_at is None


def test_job_timings_are_collected_and_junk_is_dropped() -> None:
    docs = [{"job_seconds": [1.0, 2]}, {"job_seconds": ["x", -1, None]}, {}]
    assert timed([Status.from_doc(d) for d in docs]) == (1.0, 2.0)


def test_loop_settings_from_the_environment() -> None:
    settings = load_scaler_settings(
        ENV | {"FLEETLAB_SCALER_INTERVAL": "2", "FLEETLAB_WORKER_ID": "i-9"}
    )
    assert (settings.interval_s, settings.lease_s, settings.owner, settings.fleet) == (
        2.0,
        6.0,
        "i-9",
        "local",
    )
    with pytest.raises(ConfigError, match="at least twice"):
        load_scaler_settings(ENV | {"FLEETLAB_SCALER_INTERVAL": "5", "FLEETLAB_SCALER_LEASE": "6"})
    with pytest.raises(ConfigError, match="FLEETLAB_BUCKET"):
        load_scaler_settings({k: v for k, v in ENV.items() if k != "FLEETLAB_BUCKET"})
