"""Only the holder of the scaler lease acts; a dead leader's lease is taken over, fenced."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from memstore import DictStore
from scalers import close_all, scaler

from worker.state.layout import SCALER_LEADER, claim_path


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture(autouse=True)
def _close_logs() -> Iterator[None]:
    yield
    close_all()


def test_one_leader_among_many(tmp_path: Path) -> None:
    store, clock = DictStore(), Clock()
    a, b = scaler(store, "i-a", clock, tmp_path), scaler(store, "i-b", clock, tmp_path)
    assert a.lead(clock.now) and not b.lead(clock.now)
    clock.now += 2
    assert a.lead(clock.now) and not b.lead(clock.now)  # renewed each tick: still a's


def test_a_dead_leaders_lease_is_taken_over_after_it_expires_with_a_new_token(
    tmp_path: Path,
) -> None:
    store, clock = DictStore(), Clock()
    a, b = scaler(store, "i-a", clock, tmp_path), scaler(store, "i-b", clock, tmp_path)
    assert a.lead(clock.now)
    first = a.lease
    clock.now += 9.9  # a is frozen: no renewal
    assert not b.lead(clock.now)
    clock.now += 0.2
    assert b.lead(clock.now)
    assert b.lease is not None and first is not None and b.lease.token == first.token + 1
    # The zombie thaws: its renewal is refused (fenced), it follows and forgets its memory.
    assert not a.lead(clock.now)
    assert a.lease is None
    a.log.close()
    assert "lost the scaler lease" in (tmp_path / "i-a.log").read_text()


def test_a_stopping_leader_hands_the_lease_on_at_once(tmp_path: Path) -> None:
    store, clock = DictStore(), Clock()
    a, b = scaler(store, "i-a", clock, tmp_path), scaler(store, "i-b", clock, tmp_path)
    assert a.lead(clock.now)
    a.resign()
    assert b.lead(clock.now)
    found = store.read(claim_path(SCALER_LEADER))
    assert found is not None and found.doc["owner"] == "i-b"


def test_no_config_means_no_leading_and_one_log_line(tmp_path: Path) -> None:
    store, clock = DictStore(), Clock()
    a = scaler(store, "i-a", clock, tmp_path)
    assert a.tick() is None and a.tick() is None
    a.log.close()
    text = (tmp_path / "i-a.log").read_text()
    assert text.count("no scaler/config.json") == 1
    assert store.read(claim_path(SCALER_LEADER)) is None


def test_a_bad_config_is_logged_and_not_acted_on(tmp_path: Path) -> None:
    store, clock = DictStore(), Clock()
    store.put("scaler/config.json", {"min_instances": 3, "max_instances": 1})
    a = scaler(store, "i-a", clock, tmp_path)
    assert a.tick() is None
    a.log.close()
    assert "CONFIG_ERROR" in (tmp_path / "i-a.log").read_text()
