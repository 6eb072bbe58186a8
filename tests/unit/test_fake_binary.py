"""The fake binary: pure helpers in-process, the real CLI as a subprocess."""

from __future__ import annotations

import hashlib
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from fake_binary.__main__ import main, resolve_speed
from fake_binary.analysis import (
    Header,
    analyse,
    duration_for,
    format_result,
    header_line,
    parse_header,
    resolve_fault,
)
from fake_binary.burn import burn

REPO_ROOT = Path(__file__).resolve().parents[2]

FAST = ["--speed", "0.001"]


def _env(**extra: str) -> dict[str, str]:
    """The test's environment without any FAKE_BINARY_* the developer may have exported."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FAKE_BINARY_")}
    env.update(extra)
    return env


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: float = 10
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "fake_binary", *args],
        cwd=REPO_ROOT,
        env=env if env is not None else _env(),
        capture_output=True,
        timeout=timeout,
        check=False,
    )


def _video(tmp_path: Path, content: bytes, name: str = "video.bin") -> str:
    path = tmp_path / name
    path.write_bytes(content)
    return str(path)


# --- header -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "line", [b"", b"just some bytes", b"\xff\xfe FAKEVIDEO", b"fakevideo duration=3", b"FAKEVIDEOX"]
)
def test_parse_header_without_magic_states_nothing(line: bytes) -> None:
    assert parse_header(line) == Header()


def test_parse_header_reads_duration_and_fault() -> None:
    header = parse_header(b"FAKEVIDEO  duration=12.5\tfault=hang")
    assert header == Header(duration=12.5, fault="hang", ignored=())


def test_parse_header_with_magic_only_states_nothing() -> None:
    assert parse_header(b"FAKEVIDEO") == Header()


@pytest.mark.parametrize(
    "token",
    [
        "duration=abc",
        "duration=-1",
        "duration=nan",
        "duration=inf",
        "duration=",
        "fault=boom",
        "fault=",
        "loose",
        "=3",
        "colour=red",
    ],
)
def test_parse_header_ignores_bad_tokens_and_names_them(token: str) -> None:
    header = parse_header(f"FAKEVIDEO {token} duration=7".encode())
    assert header == Header(duration=7.0, fault=None, ignored=(token,))


def test_parse_header_accepts_zero_duration() -> None:
    assert parse_header(b"FAKEVIDEO duration=0").duration == 0.0


def test_header_line_stops_at_newline_and_256_bytes() -> None:
    assert header_line(b"FAKEVIDEO duration=1\r\nrest") == b"FAKEVIDEO duration=1"
    assert header_line(b"x" * 1000) == b"x" * 256


# --- duration, fault, speed ---------------------------------------------------------------


def test_duration_comes_from_size_without_header() -> None:
    assert duration_for(18_000_000, Header(), 100_000) == 180.0
    assert duration_for(0, Header(), 100_000) == 0.0
    assert duration_for(1000, Header(), 10) == 100.0


def test_duration_from_header_wins_over_size() -> None:
    assert duration_for(18_000_000, Header(duration=3.0), 100_000) == 3.0


def test_duration_rejects_non_positive_rate() -> None:
    with pytest.raises(ValueError, match="bytes_per_second"):
        duration_for(10, Header(), 0)


def test_fault_precedence_is_flag_then_header_then_env() -> None:
    assert resolve_fault("exit", Header(fault="hang"), "crash") == "exit"
    assert resolve_fault(None, Header(fault="hang"), "crash") == "hang"
    assert resolve_fault(None, Header(), "crash") == "crash"
    assert resolve_fault(None, Header(), "") is None
    assert resolve_fault(None, Header(), None) is None


def test_unknown_fault_is_rejected() -> None:
    with pytest.raises(ValueError, match="unknown fault"):
        resolve_fault(None, Header(), "meltdown")


def test_speed_precedence_and_validation() -> None:
    assert resolve_speed(0.5, "2") == 0.5
    assert resolve_speed(None, "2") == 2.0
    assert resolve_speed(None, None) == 1.0
    with pytest.raises(ValueError, match="FAKE_BINARY_SPEED"):
        resolve_speed(None, "fast")


# --- analysis -----------------------------------------------------------------------------


def test_analyse_shape_and_determinism() -> None:
    digest = hashlib.sha256(b"some video").digest()
    rows = analyse(digest, 0)
    assert rows == analyse(digest, 0)
    assert len(rows) == 2
    assert all(len(row) == 10 and all(0 <= v < 100 for v in row) for row in rows)


def test_analyse_differs_for_every_r_and_every_input() -> None:
    digest = hashlib.sha256(b"some video").digest()
    results = {str(analyse(digest, r)) for r in range(-1000, 1001)}
    assert len(results) == 2001
    assert analyse(digest, 5) != analyse(hashlib.sha256(b"other video").digest(), 5)


@pytest.mark.parametrize("r", [-1001, 1001])
def test_analyse_rejects_r_out_of_range(r: int) -> None:
    with pytest.raises(ValueError, match="r must be"):
        analyse(b"\0" * 32, r)


def test_format_result_is_the_listing() -> None:
    rows = [list(range(1, 11)), list(range(10, 0, -1))]
    assert format_result(rows) == "1 2 3 4 5 6 7 8 9 10\n10 9 8 7 6 5 4 3 2 1\n"


# --- burn ---------------------------------------------------------------------------------


def test_burn_spends_the_target_cpu() -> None:
    before = time.process_time()
    burn(0.2, 2)
    assert time.process_time() - before >= 0.2


def test_burn_of_nothing_returns_at_once() -> None:
    started = time.perf_counter()
    burn(0.0, 4)
    assert time.perf_counter() - started < 0.05


def test_burn_needs_a_thread() -> None:
    with pytest.raises(ValueError, match="threads"):
        burn(1.0, 0)


# --- main in-process ----------------------------------------------------------------------


def test_main_in_process(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = b"FAKEVIDEO duration=0\nframes"
    assert main(["--R=-100", _video(tmp_path, data)]) == 0
    expected = format_result(analyse(hashlib.sha256(data).digest(), -100))
    assert capsys.readouterr().out == expected


def test_main_returns_2_on_bad_arguments(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--R=abc", "x"]) == 2
    assert "--R" in capsys.readouterr().err


# --- the real CLI -------------------------------------------------------------------------


def test_cli_prints_two_rows_of_ten_integers(tmp_path: Path) -> None:
    data = os.urandom(50_000)
    result = run_cli(*FAST, "--R=7", _video(tmp_path, data))
    assert result.returncode == 0, result.stderr
    assert result.stdout.decode() == format_result(analyse(hashlib.sha256(data).digest(), 7))
    lines = result.stdout.decode().splitlines()
    assert len(lines) == 2
    assert all(len(line.split()) == 10 for line in lines)


def test_cli_output_depends_on_input_and_r_only(tmp_path: Path) -> None:
    path = _video(tmp_path, b"FAKEVIDEO duration=1\n" + bytes(range(256)) * 100)
    slow = run_cli("--speed", "0.05", "--threads", "1", "--R=-100", path)
    fast = run_cli("--speed", "0", "--threads", "3", "--R", "-100", path)
    other = run_cli("--speed", "0", "--R=-99", path)
    assert slow.returncode == fast.returncode == other.returncode == 0
    assert slow.stdout == fast.stdout
    assert other.stdout != slow.stdout


def test_cli_reads_speed_from_env(tmp_path: Path) -> None:
    path = _video(tmp_path, b"FAKEVIDEO duration=1000\n")
    result = run_cli(path, env=_env(FAKE_BINARY_SPEED="0"), timeout=5)
    assert result.returncode == 0
    bad = run_cli(path, env=_env(FAKE_BINARY_SPEED="fast"))
    assert bad.returncode == 2
    assert b"FAKE_BINARY_SPEED" in bad.stderr


def test_cli_warns_about_ignored_header_tokens(tmp_path: Path) -> None:
    result = run_cli(*FAST, _video(tmp_path, b"FAKEVIDEO duration=x fault=boom\n"))
    assert result.returncode == 0
    assert b"duration=x" in result.stderr
    assert b"fault=boom" in result.stderr


def _child_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


@pytest.mark.parametrize(("duration", "low", "high"), [("100", 0.5, None), ("0", None, 0.3)])
def test_cli_cpu_time_scales_with_duration(
    tmp_path: Path, duration: str, low: float | None, high: float | None
) -> None:
    path = _video(tmp_path, f"FAKEVIDEO duration={duration}\n".encode())
    before = _child_cpu_seconds()
    result = run_cli("--speed", "0.01", "--threads", "2", path)
    spent = _child_cpu_seconds() - before
    assert result.returncode == 0
    if low is not None:
        assert spent >= low
    if high is not None:
        assert spent < high


def test_cli_crash_dies_by_sigabrt(tmp_path: Path) -> None:
    result = run_cli(*FAST, "--fault", "crash", _video(tmp_path, b"data"))
    assert result.returncode == -signal.SIGABRT
    assert result.stdout == b""


def test_cli_hang_runs_until_killed(tmp_path: Path) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fake_binary", *FAST, "--fault", "hang", _video(tmp_path, b"")],
        cwd=REPO_ROOT,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        with pytest.raises(subprocess.TimeoutExpired):
            proc.wait(timeout=2)
        assert proc.poll() is None
    finally:
        proc.kill()
        stdout, _ = proc.communicate()
    assert stdout == b""
    assert proc.returncode == -signal.SIGKILL


def test_cli_exit_fault_returns_3(tmp_path: Path) -> None:
    result = run_cli(*FAST, "--fault", "exit", _video(tmp_path, b"data"))
    assert result.returncode == 3
    assert b"fake_binary: simulated failure" in result.stderr


def test_cli_garbage_is_hostile_to_xml(tmp_path: Path) -> None:
    result = run_cli(*FAST, "--fault", "garbage", _video(tmp_path, b"data"))
    assert result.returncode == 0
    out = result.stdout
    assert b"]]>" in out and b"<" in out and b"&" in out
    assert all(c in out for c in (b"\x00", b"\x07", b"\x1b"))
    assert max(len(line) for line in out.split(b"\n")) >= 100_000
    with pytest.raises(UnicodeDecodeError):
        out.decode("utf-8")


def test_cli_fault_from_header_and_env(tmp_path: Path) -> None:
    from_header = _video(tmp_path, b"FAKEVIDEO fault=exit\n", "h.bin")
    plain = _video(tmp_path, b"no header", "p.bin")
    assert run_cli(*FAST, from_header).returncode == 3
    assert run_cli(*FAST, plain, env=_env(FAKE_BINARY_FAULT="exit")).returncode == 3
    # The header outranks the env, the flag outranks the header.
    assert run_cli(*FAST, from_header, env=_env(FAKE_BINARY_FAULT="garbage")).returncode == 3
    assert run_cli(*FAST, "--fault", "garbage", from_header).returncode == 0


def test_cli_unknown_fault_exits_2(tmp_path: Path) -> None:
    path = _video(tmp_path, b"data")
    assert run_cli(*FAST, "--fault", "meltdown", path).returncode == 2
    env_result = run_cli(*FAST, path, env=_env(FAKE_BINARY_FAULT="meltdown"))
    assert env_result.returncode == 2
    assert b"meltdown" in env_result.stderr


def test_cli_missing_input_exits_66(tmp_path: Path) -> None:
    for path in (tmp_path / "absent.bin", tmp_path):
        result = run_cli(*FAST, str(path))
        assert result.returncode == 66
        assert b"cannot read input" in result.stderr


@pytest.mark.parametrize("r", ["abc", "5000", "-1001", "1.5", ""])
def test_cli_bad_r_exits_2(tmp_path: Path, r: str) -> None:
    result = run_cli(*FAST, f"--R={r}", _video(tmp_path, b"data"))
    assert result.returncode == 2
    assert b"--R" in result.stderr
    assert result.stdout == b""
