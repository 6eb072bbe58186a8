"""`lab plan` as a user runs it: JSON, the table, bad traces, the plot."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from lab.cli import app

runner = CliRunner()
SMALL = ["plan", "--days", "1", "--jobs-per-day", "2000"]
FIGURES = {
    "p50_s",
    "p95_s",
    "p99_s",
    "slo_violation_pct",
    "hour_slo_violation_pct",
    "instance_hours",
    "billed_hours",
    "launches",
    "launches_per_day",
    "cost_usd",
    "cost_per_1000_jobs_usd",
    "ratio_to_work_bound",
    "ratio_to_queue_bound",
}


def test_json_is_one_object_with_every_policy() -> None:
    result = runner.invoke(app, [*SMALL, "--json"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    assert set(plan) == {
        "trace",
        "jobs_per_day",
        "job_seconds",
        "slo_p95_s",
        "boot_seconds",
        "seed",
        "jobs",
        "work_bound_hours",
        "queue_bound_hours",
        "static_machines_by_work",
        "static_machines_for_slo",
        "min_launches",
        "price_per_hour",
        "policies",
    }
    assert set(plan["policies"]) == {
        "fleetlab",
        "static",
        "target-tracking",
        "target-tracking-tuned",
        "keda",
        "keda-tuned",
    }
    for name, figures in plan["policies"].items():
        tuned = {"tuned_setting"} if name.endswith("-tuned") else set()
        assert set(figures) == FIGURES | tuned
    assert plan["price_per_hour"] == 0.08925  # c7i.large, what `lab provision` launches
    assert plan["trace"] == "uniform"
    assert plan["static_machines_by_work"] == 5


def test_policy_picks_what_is_replayed() -> None:
    result = runner.invoke(app, [*SMALL, "--json", "--policy", "keda,static"])
    assert result.exit_code == 0, result.output
    assert set(json.loads(result.stdout)["policies"]) == {"keda", "static"}


def test_the_real_traces_plan_by_name() -> None:
    for trace in ("flights-2001", "usgs-quakes"):
        args = [*SMALL, "--json", "--policy", "fleetlab", "--trace", trace]
        result = runner.invoke(app, args)
        assert result.exit_code == 0, result.output
        plan = json.loads(result.stdout)
        assert plan["trace"] == trace
        assert plan["policies"]["fleetlab"]["slo_violation_pct"] <= 5


def test_the_table_states_the_articles_arithmetic() -> None:
    result = runner.invoke(app, ["plan", "--days", "3", "--policy", "static"])
    assert result.exit_code == 0, result.output
    assert (
        "one machine: 480 jobs/day; by work: 21 machines; "
        "for the SLO with random arrivals: 22" in result.stdout
    )
    assert "static" in result.stdout.splitlines()[-1]


def test_a_bad_trace_file_exits_nonzero_with_a_message(tmp_path: Path) -> None:
    path = tmp_path / "bad.txt"
    path.write_text("0 12\n1 lots\n")
    result = runner.invoke(app, ["plan", "--trace", str(path)])
    assert result.exit_code == 1
    assert "line 2: 'lots' is not a number" in result.stderr
    assert "Traceback" not in result.output


def test_bad_settings_exit_nonzero_with_a_message() -> None:
    for args, said in (
        (["--trace", "nowhere.txt"], "unknown trace 'nowhere.txt'"),
        (["--policy", "magic"], "--policy must be"),
        (["--min", "5", "--max", "2"], "min (5) <= max (2)"),
        (["--billing", "weekly"], "billing must be second or hour"),
        (["--price", "-1"], "price must not be negative"),
    ):
        result = runner.invoke(app, [*SMALL, *args])
        assert result.exit_code == 1, args
        assert said in result.stderr


def test_plot_writes_a_png(tmp_path: Path) -> None:
    out = tmp_path / "plan.png"
    result = runner.invoke(app, [*SMALL, "--policy", "fleetlab,static", "--plot", str(out)])
    assert result.exit_code == 0, result.output
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_price_turns_instance_hours_into_dollars() -> None:
    result = runner.invoke(app, [*SMALL, "--json", "--policy", "static", "--price", "2"])
    assert result.exit_code == 0, result.output
    plan = json.loads(result.stdout)
    static = plan["policies"]["static"]
    assert static["cost_usd"] == round(2 * static["instance_hours"], 2)
    per_1000 = 1000 * static["cost_usd"] / plan["jobs"]
    assert abs(static["cost_per_1000_jobs_usd"] - per_1000) < 0.01


def test_tuned_baselines_say_their_setting_in_the_table() -> None:
    result = runner.invoke(app, [*SMALL, "--policy", "target-tracking-tuned,keda-tuned"])
    assert result.exit_code == 0, result.output
    assert "target-tracking-tuned: target_backlog_per_instance" in result.stdout
    assert "keda-tuned: queue_length" in result.stdout
