"""The explorer's report: the counts table, the rules, the latencies, the fault timeline; the
JSON form; and ``--plot``'s PNG timeline (faults, queue depth, fleet size, completions)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from lab.chaos.explore.checker import CLASSES
from lab.chaos.explore.runner import Outcome


def faults_by_kind(outcome: Outcome) -> dict[str, int]:
    """How many faults of each kind the schedule had."""
    return dict(sorted(Counter(f.kind for f in outcome.schedule.faults).items()))


def as_dict(outcome: Outcome) -> dict[str, Any]:
    """The JSON form: seed, env, jobs, faults (with what each did), counts, rules, latency."""
    did: dict[int, list[str]] = {}
    for entry in outcome.timeline:
        if "index" in entry:
            did.setdefault(int(entry["index"]), []).append(f"{entry['at']:.2f} s {entry['what']}")
    verdict = outcome.verdict
    return {
        "seed": outcome.schedule.seed,
        "env": outcome.env,
        "jobs": len(outcome.schedule.jobs),
        "sent": len({j.of or j.request_id for j in outcome.schedule.jobs}),
        "faults": [
            {
                "at": f.at,
                "kind": f.kind,
                "target": f.target,
                "duration": f.duration,
                "params": f.params,
                "did": did.get(k, []),
            }
            for k, f in enumerate(outcome.schedule.faults)
        ],
        "faults_by_kind": faults_by_kind(outcome),
        "counts": verdict.counts if verdict else dict.fromkeys(CLASSES, 0),
        "rules": [
            {"name": r.name, "passed": r.passed, "detail": r.detail}
            for r in (verdict.rules if verdict else ())
        ],
        "latency": dict(verdict.latency) if verdict else {},
        "aws_calls": dict(outcome.aws_calls),
        "seconds": round(outcome.seconds, 1),
        "error": outcome.error,
        "passed": outcome.passed,
    }


def text(outcome: Outcome) -> str:
    """The report a person reads."""
    data = as_dict(outcome)
    head = (
        f"explore seed {data['seed']} on {data['env']}: {'pass' if data['passed'] else 'FAIL'} "
        f"in {data['seconds']:.0f} s; {data['jobs']} jobs, {len(data['faults'])} faults"
    )
    lines = [head, ""]
    lines += [
        f"  {at:8.2f} s  {kind:18} {target:22} {what}"
        for at, kind, target, what in _timeline(outcome)
    ]
    lines += ["", "  faults: " + ", ".join(f"{k} {n}" for k, n in data["faults_by_kind"].items())]
    if data["error"]:
        lines.append(f"  ERROR {data['error']}")
    for rule in data["rules"]:
        mark = "ok    " if rule["passed"] else "BROKEN"
        lines.append(f"  {mark} {rule['name']}" + (f": {rule['detail']}" if rule["detail"] else ""))
    lat = data["latency"]
    if lat:
        figures = f"p50 {lat['p50_s']:.2f} s, p95 {lat['p95_s']:.2f} s, max {lat['max_s']:.2f} s"
        lines.append(f"  latency (send to first answer, {lat['count']} requests): {figures}")
    if data["aws_calls"]:
        lines.append(
            f"  network: {sum(data['aws_calls'].values())} AWS calls held for AWS's latencies "
            "by the lab's proxy"
        )
    lines += ["", "  " + "  ".join(f"{c:>17}" for c in CLASSES)]
    lines.append("  " + "  ".join(f"{data['counts'][c]:>17}" for c in CLASSES))
    return "\n".join(lines)


def _timeline(outcome: Outcome) -> list[tuple[float, str, str, str]]:
    return [(e["at"], e["kind"], e["target"], e["what"]) for e in outcome.timeline]


def plot(outcome: Outcome, path: Path) -> None:
    """Queue depth, fleet size and completions over the run, the faults marked; a PNG."""
    figure = Figure(figsize=(12, 8), layout="constrained")
    faults_ax, queue, fleet, done = figure.subplots(4, 1, sharex=True, height_ratios=[2, 2, 1, 2])
    kinds = sorted({f.kind for f in outcome.schedule.faults})
    for f in outcome.schedule.faults:
        row = kinds.index(f.kind)
        faults_ax.plot([f.at, f.at + max(f.duration, 0.5)], [row, row], linewidth=6)
    faults_ax.set_yticks(range(len(kinds)), kinds)
    faults_ax.set_title(f"lab chaos explore, seed {outcome.schedule.seed} on {outcome.env}")
    t = [s[0] for s in outcome.samples]
    queue.plot(t, [s[2] for s in outcome.samples], label="visible")
    queue.plot(t, [s[3] for s in outcome.samples], label="in flight")
    queue.set_ylabel("request queue")
    queue.legend(loc="upper right")
    fleet.step(t, [s[1] for s in outcome.samples], where="post")
    fleet.set_ylim(0, outcome.schedule.bounds[1] + 1)
    fleet.set_ylabel("instances")
    done.plot(t, [s[4] for s in outcome.samples])
    done.set_ylabel("answered")
    done.set_xlabel("seconds since the run began")
    figure.savefig(path, dpi=100)
