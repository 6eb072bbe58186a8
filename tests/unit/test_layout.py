"""The bucket's layout has one home: keys round-trip, and the shell boot script agrees with it."""

from __future__ import annotations

from worker import boot
from worker.state import layout
from worker.state.activity import EVENTS
from worker.state.claims import claim_key


def test_keys_live_under_their_prefixes() -> None:
    assert layout.bundle_key("v1").startswith(layout.BUNDLES)
    assert layout.claim_path("abc") == "claims/abc.json"
    assert layout.status_key("i-1") == "status/i-1.json"
    assert layout.result_key("k", "out.png") == "results/k/out.png"
    assert layout.SCALER_CONFIG.startswith(layout.SCALER)
    assert layout.claim_path(layout.SCALER_LEADER) == "claims/scaler-leader.json"


def test_a_status_key_names_its_worker_back() -> None:
    assert layout.worker_of(layout.status_key("i-0abc")) == "i-0abc"


def test_every_key_the_instances_write_is_granted_to_them() -> None:
    written = [
        layout.claim_path(claim_key("", "r-1")),
        layout.status_key("i-1"),
        layout.SCALER_STATE,
        layout.result_key("k", "f"),
    ]
    for key in written:
        assert any(key.startswith(p) for p in layout.WRITTEN_BY_INSTANCES), key
    read = [layout.BUNDLE_POINTER, layout.bundle_key("v"), layout.SCALER_CONFIG]
    for key in read:
        assert any(key.startswith(p) for p in layout.READ_BY_INSTANCES), key
    assert layout.BUNDLES not in layout.WRITTEN_BY_INSTANCES  # code comes only from the lab


def test_the_boot_script_reads_the_pointer_the_lab_writes() -> None:
    script = boot.script()
    assert f"s3_get {layout.BUNDLE_POINTER} " in script
    assert f"^{layout.BUNDLES}" in script  # the key shape it accepts


def test_event_names_are_unique_and_log_safe() -> None:
    assert len(set(EVENTS)) == len(EVENTS)
    assert all(name and " " not in name and '"' not in name for name in EVENTS)
