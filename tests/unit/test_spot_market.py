"""The spot market's settings and memory: the share lives in the scaler's settings document
(beside min and max), and the interruptions behind the on-demand fallback live in shared state,
so that whichever scaler leads counts the same ones."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from memstore import DictStore
from scalers import close_all, scaler

from worker.errors import StoreError
from worker.scaler.capacity import ScalerConfig
from worker.scaler.loop import config_from
from worker.scaler.market import Interruptions, Market, noted, recent_interruptions, spot_launches
from worker.state.layout import SCALER_INTERRUPTIONS


@pytest.fixture(autouse=True)
def _close_logs() -> Iterator[None]:
    yield
    close_all()


def test_the_spot_settings_are_read_from_the_scaler_document() -> None:
    config = config_from({"min_instances": 1, "max_instances": 4, "spot_fraction": 0.5,
                          "spot_fallback_after": 2, "spot_fallback_window_s": 600})  # fmt: skip
    assert config.market == Market(spot_fraction=0.5, fallback_after=2, window_s=600.0)
    assert ScalerConfig().market == Market()  # absent: all on-demand


def test_an_interruption_is_noted_once_and_forgotten_after_the_window() -> None:
    first = noted(Interruptions(), ["i-a"], 100.0, 600.0)
    assert first.seen == {"i-a": 100.0}
    again = noted(first, ["i-a", "i-b"], 130.0, 600.0)  # i-a seen on a later tick: same one
    assert again.seen == {"i-a": 100.0, "i-b": 130.0}
    assert recent_interruptions(again.seen.values(), 130.0, 600.0) == 2
    later = noted(again, [], 720.0, 600.0)  # i-a is 620 s old
    assert later.seen == {"i-b": 130.0}


def test_the_interruptions_document_reads_back_and_drops_junk() -> None:
    known = Interruptions({"i-b": 2.0, "i-a": 1.0})
    assert Interruptions.from_doc(known.to_doc()) == known
    doc = {"seen": {"i-a": 1.0, "i-b": "soon", "i-c": True, "i-d": 4}}
    assert Interruptions.from_doc(doc).seen == {"i-a": 1.0, "i-d": 4.0}
    assert Interruptions.from_doc({"seen": []}) == Interruptions()
    assert Interruptions.from_doc({}) == Interruptions()


def test_a_new_leader_goes_on_from_the_interruptions_the_first_one_saw(tmp_path: Path) -> None:
    store = DictStore()
    market = Market(spot_fraction=1.0, fallback_after=2, window_s=3600.0)
    first = scaler(store, "i-a", None, tmp_path)
    seen = first.interruptions(["i-x"], 1000.0, market.window_s)
    recent = recent_interruptions(seen.seen.values(), 1000.0, market.window_s)
    assert spot_launches(1, {"i-x": "spot"}, market, recent) == 1  # one interruption: spot yet
    # i-a's instance is reclaimed; a new scaler leads and sees a second instance under notice.
    second = scaler(store, "i-b", None, tmp_path)
    seen = second.interruptions(["i-y"], 1060.0, market.window_s)
    assert seen.seen == {"i-x": 1000.0, "i-y": 1060.0}
    recent = recent_interruptions(seen.seen.values(), 1060.0, market.window_s)
    assert spot_launches(1, {"i-y": "spot"}, market, recent) == 0  # on-demand now
    stored = store.read(SCALER_INTERRUPTIONS)
    assert stored is not None and Interruptions.from_doc(stored.doc) == seen


class RacingStore(DictStore):
    """A store where another scaler writes the interruptions between this one's read and its
    conditional write, ``races`` times."""

    def __init__(self, races: int) -> None:
        super().__init__()
        self.races = races

    def replace(self, key: str, doc: dict[str, Any], etag: str) -> str:
        if self.races:
            self.races -= 1
            current = self.docs[key].doc["seen"]
            self.put(key, {"seen": current | {f"i-other-{self.races}": 999.0}})
        return super().replace(key, doc, etag)


def test_an_interruption_another_scaler_wrote_meanwhile_is_kept(tmp_path: Path) -> None:
    store = RacingStore(races=1)
    store.put(SCALER_INTERRUPTIONS, Interruptions({"i-x": 900.0}).to_doc())
    seen = scaler(store, "i-a", None, tmp_path).interruptions(["i-y"], 1000.0, 3600.0)
    assert seen.seen == {"i-x": 900.0, "i-other-0": 999.0, "i-y": 1000.0}
    stored = store.read(SCALER_INTERRUPTIONS)
    assert stored is not None and Interruptions.from_doc(stored.doc) == seen


def test_a_write_lost_again_and_again_is_an_error_not_a_silent_loss(tmp_path: Path) -> None:
    store = RacingStore(races=3)
    store.put(SCALER_INTERRUPTIONS, Interruptions({"i-x": 900.0}).to_doc())
    with pytest.raises(StoreError, match="lost to another writer"):
        scaler(store, "i-a", None, tmp_path).interruptions(["i-y"], 1000.0, 3600.0)


def test_nothing_new_is_not_written(tmp_path: Path) -> None:
    store = DictStore()
    assert scaler(store, "i-a", None, tmp_path).interruptions([], 1000.0, 3600.0) == Interruptions()
    assert store.read(SCALER_INTERRUPTIONS) is None
