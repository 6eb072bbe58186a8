"""Demand traces: both file formats, bin lengths, rescaling, the synthetic shapes, bad files."""

from __future__ import annotations

from pathlib import Path

import pytest

from lab.planner import traces
from lab.planner.arrivals import draw
from lab.planner.errors import TraceError
from lab.planner.traces import DAY_S, load, parse


def test_index_count_lines_are_hourly_bins_and_gaps_count_zero() -> None:
    trace = parse("# hour count\n0 10\n1 20\n\n3 5\n", "t.txt")
    assert trace.counts == (10.0, 20.0, 0.0, 5.0)
    assert trace.bin_seconds == 3600


def test_a_trace_starts_at_its_first_index() -> None:
    assert parse("7 1\n8 2\n", "t.txt").counts == (1.0, 2.0)


@pytest.mark.parametrize(
    "text", ["4 0 2 7.5", "4\n0\n2\n7.5\n", "4 0 2\n7.5\n", "4 0 2\n7.5 1 2\n"]
)
def test_a_sequence_of_counts_is_per_second_bins(text: str) -> None:
    trace = parse(text, "t.txt")
    assert trace.counts[:4] == (4.0, 0.0, 2.0, 7.5)
    assert trace.bin_seconds == 1


def test_bin_seconds_overrides_either_format() -> None:
    assert parse("0 1\n1 2\n", "t", bin_seconds=60).bin_seconds == 60
    assert parse("1 2 3", "t", bin_seconds=300).bin_seconds == 300


def test_every_trace_is_rescaled_to_the_jobs_per_day(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("0 100\n1 300\n")  # two hours
    trace = load(str(path), jobs_per_day=4800)
    assert sum(trace.counts) == pytest.approx(400)  # 4800 a day is 400 in two hours
    assert trace.counts[1] / trace.counts[0] == pytest.approx(3)  # the shape stays
    assert trace.jobs_per_day == pytest.approx(4800)


def test_days_cuts_a_file_trace(tmp_path: Path) -> None:
    path = tmp_path / "t.txt"
    path.write_text("\n".join(f"{h} {h + 1}" for h in range(72)))
    assert len(load(str(path), 1000, days=1).counts) == 24


def test_the_google_trace_resolves_by_name() -> None:
    trace = load("google-2011", jobs_per_day=10_000)
    assert trace.name == "google-2011"
    assert len(trace.counts) == 696
    assert trace.bin_seconds == 3600
    assert sum(trace.counts) == pytest.approx(10_000 * 29)
    assert max(trace.counts) / (sum(trace.counts) / 696) == pytest.approx(3.3, abs=0.05)


def test_the_real_flights_and_quakes_traces_resolve_by_name_in_their_own_bins() -> None:
    flights = load("flights-2001", jobs_per_day=10_000)
    assert (flights.bin_seconds, len(flights.counts)) == (60, 28 * 1440)  # four weeks by minute
    days = [sum(flights.counts[d * 1440 : (d + 1) * 1440]) for d in range(28)]
    assert min(days[:7]) == days[5]  # Saturday 2001-02-10 is the quietest of the first week
    quakes = load("usgs-quakes", jobs_per_day=10_000)
    assert quakes.bin_seconds == 1
    assert sum(1 for c in quakes.counts if c) == 1_707  # one event in each busy second
    assert quakes.seconds / DAY_S == pytest.approx(6.98, abs=0.01)
    assert load("flights-2001", 10_000, bin_seconds=300).bin_seconds == 300


def test_synthetic_traces_last_seven_days_unless_told() -> None:
    assert traces.uniform().seconds == 7 * DAY_S
    assert load("diurnal", 1000, days=2).seconds == 2 * DAY_S
    assert load("spike", 1000, bin_seconds=60).bin_seconds == 60


def test_diurnal_peak_bin_is_three_times_the_mean() -> None:
    trace = load("diurnal", 10_000, days=1)
    mean = sum(trace.counts) / len(trace.counts)
    assert max(trace.counts) / mean == pytest.approx(3.0, rel=1e-9)
    peak = trace.counts.index(max(trace.counts))
    assert 14 * 3600 - 300 <= peak * trace.bin_seconds <= 14 * 3600  # peak at 14:00
    assert min(trace.counts) < mean / 100  # the night is nearly empty


def test_spike_is_a_flat_base_with_a_half_hour_burst_at_eight_times_it() -> None:
    trace = load("spike", 10_000, days=2)
    base = trace.counts[0]
    per_day = int(DAY_S / trace.bin_seconds)
    for day in range(2):
        counts = trace.counts[day * per_day : (day + 1) * per_day]
        burst = [i for i, c in enumerate(counts) if c > base * 1.01]
        assert [i * 300 for i in burst] == list(range(12 * 3600, 12 * 3600 + 1800, 300))
        assert all(counts[i] == pytest.approx(8 * base) for i in burst)
        assert all(c == pytest.approx(base) for i, c in enumerate(counts) if i not in burst)
    assert sum(trace.counts) == pytest.approx(20_000)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("# only a comment\n\n", "empty"),
        ("0 10\n1 ten\n", "line 2: 'ten' is not a number"),
        ("3 -1 4", "negative"),
        ("0 5\n1 -2\n", "line 2: count -2 is negative"),
        ("1 nan 2", "not a finite number"),
        ("0 5\n1 6\n7\n", "mixed formats"),
        ("0 5\n1 6 7\n", "mixed formats"),
        ("0 5\n1 6 7\n8 9\n", "line 1 has 2 fields, line 2 has 3"),
        ("0.5 5\n1 6\n", "not a whole number"),
        ("0 5\n0 6\n", "index 0 must be >= 0 and above 0"),
        ("0 0\n1 0\n", "every count is 0"),
    ],
)
def test_bad_files_are_refused_clearly(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "bad.txt"
    path.write_text(text)
    with pytest.raises(TraceError, match=message) as caught:
        load(str(path), 1000)
    assert str(path) in str(caught.value)


def test_an_unknown_name_that_is_no_file_is_refused() -> None:
    with pytest.raises(TraceError, match="unknown trace 'fortnightly'"):
        load("fortnightly", 1000)


def test_a_file_that_is_not_text_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "bin.dat"
    path.write_bytes(b"\xff\xfe\x00\x01")
    with pytest.raises(TraceError, match="cannot read trace"):
        load(str(path), 1000)


def test_bad_numbers_for_synthetic_traces_are_refused() -> None:
    with pytest.raises(TraceError, match="divides a day"):
        load("uniform", 1000, bin_seconds=7)
    with pytest.raises(TraceError, match="--days must be positive"):
        load("spike", 1000, days=0)
    with pytest.raises(TraceError, match="--jobs-per-day must be positive"):
        load("uniform", 0)


def test_weekly_is_the_diurnal_day_with_a_quiet_weekend() -> None:
    week = traces.weekly(7)
    day = traces.diurnal(1).counts
    per_day = len(day)
    assert week.counts[:per_day] == day  # Monday
    saturday = week.counts[5 * per_day : 6 * per_day]
    assert saturday == pytest.approx([c * traces.WEEKEND_FACTOR for c in day])


def test_bursty_is_per_second_seeded_and_bursts() -> None:
    first = load("bursty", 10_000, days=1)
    assert first.bin_seconds == 1 and len(first.counts) == 86_400
    assert load("bursty", 10_000, days=1).counts == first.counts  # the same shape every time
    assert load("bursty-2", 10_000, days=1).counts != first.counts
    mean = sum(first.counts) / len(first.counts)
    assert max(first.counts) > 4 * mean  # bursts and noise on top of a 2x daily peak


def test_lognormal_jobs_keep_their_mean_and_have_a_heavy_tail() -> None:
    jobs = draw(load("uniform", 20_000, days=2), 1, 180, "lognormal")
    durations = sorted(jobs.durations)
    mean = sum(durations) / len(durations)
    assert mean == pytest.approx(180, rel=0.05)
    assert durations[int(0.99 * len(durations))] > 4 * mean
