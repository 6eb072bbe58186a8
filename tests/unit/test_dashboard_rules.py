"""The dashboard's rules that need no server: who may bind where, the token check, ids and
limits from URLs, and the sampler's memory."""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import EndpointConnectionError

from lab.dashboard import api
from lab.dashboard.history import History
from lab.dashboard.server import Refused, check_bind, loopback, token_ok

TOKEN = "0123456789abcdef-token"


@pytest.mark.parametrize("host", ["127.0.0.1", "127.0.0.9", "::1", "localhost"])
def test_loopback_binds_need_no_token(host: str) -> None:
    assert loopback(host)
    check_bind(host, None)
    check_bind(host, TOKEN)


@pytest.mark.parametrize("host", ["0.0.0.0", "192.168.1.5", "::", "example.org"])
def test_other_binds_need_a_token(host: str) -> None:
    assert not loopback(host)
    with pytest.raises(Refused, match="needs a token"):
        check_bind(host, None)
    with pytest.raises(Refused, match="needs a token"):
        check_bind(host, "")
    with pytest.raises(Refused, match="16 characters"):
        check_bind(host, "short")
    check_bind(host, TOKEN)


def test_a_short_token_is_refused_on_loopback_too() -> None:
    with pytest.raises(Refused, match="16 characters"):
        check_bind("127.0.0.1", "short")


def test_token_comparison() -> None:
    assert token_ok(None, None)
    assert token_ok(TOKEN, TOKEN)
    assert not token_ok(TOKEN, None)
    assert not token_ok(TOKEN, "")
    assert not token_ok(TOKEN, TOKEN[:-1])
    assert not token_ok(TOKEN, TOKEN + "x")


@pytest.mark.parametrize("value", [None, "", "a b", "x" * 129, "../etc", "id;rm"])
def test_bad_ids_are_refused(value: str | None) -> None:
    with pytest.raises(api.BadInput):
        api.checked_id(value, "id")


def test_good_ids_pass() -> None:
    for value in ("req-42", "7d57b74c-1f0e-4c1a-9d0b-2b1f5c3a9e01", "a:b.c_d"):
        assert api.checked_id(value, "id") == value


def test_plots_are_named_not_pathed(tmp_path: Any) -> None:
    for name in ("../env.json", "x.json", "a/b.png", ""):
        with pytest.raises(api.BadInput):
            api.report_file(tmp_path, name)
    (tmp_path / "reports").mkdir()
    (tmp_path / "reports" / "p.png").write_bytes(b"\x89PNG")
    assert api.report_file(tmp_path, "p.png").name == "p.png"


def _depths(n: int) -> dict[str, dict[str, int]]:
    return {"request": {"visible": n, "in_flight": 0, "delayed": 0}}


def test_history_keeps_points_and_new_decisions_only() -> None:
    seen: list[tuple[dict[str, dict[str, int]], dict[str, Any] | None]] = [
        (_depths(1), {"at": 1.0, "desired": 1}),
        (_depths(2), {"at": 1.0, "desired": 1}),  # the same decision, read again
        (_depths(3), {"at": 2.0, "desired": 2}),
    ]
    history = History(lambda: seen.pop(0), interval_s=1.0, keep_s=2.0)
    for now in (10.0, 11.0, 12.0):
        history.take(now)
    assert [p["at"] for p in history.points()] == [11.0, 12.0]  # bounded to keep_s
    assert [d["desired"] for d in history.decisions()] == [2, 1]  # newest first, no repeat


def test_history_keeps_a_failure_and_recovers() -> None:
    calls = iter([EndpointConnectionError(endpoint_url="http://127.0.0.1:1"), None])

    def sample() -> tuple[dict[str, dict[str, int]], dict[str, Any] | None]:
        failure = next(calls)
        if failure:
            raise failure
        return _depths(0), None

    history = History(sample)
    history.take(1.0)
    assert history.error and "EndpointConnectionError" in history.error
    assert history.points() == []
    history.take(2.0)
    assert history.error is None and len(history.points()) == 1
