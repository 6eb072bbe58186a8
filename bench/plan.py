"""Planner benchmark: each policy on each trace against the lower bounds, one JSON line each.

Deterministic (seeded), so "repeated runs" would repeat the same figures; the noise a median
absorbs here is the seed: ``--seeds 3`` runs three and reports each figure's median.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time

from lab.planner.plan import PlanSpec, make_plan

TRACES = ("uniform", "diurnal", "spike", "google-2011")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--traces", default=",".join(TRACES))
    args = parser.parse_args()
    for trace in args.traces.split(","):
        plans = []
        began = time.perf_counter()
        for seed in range(1, args.seeds + 1):
            plans.append(make_plan(PlanSpec(trace=trace, seed=seed)).as_dict())
        seconds = (time.perf_counter() - began) / args.seeds
        first = plans[0]
        for name in first["policies"]:
            figures = {
                key: statistics.median(p["policies"][name][key] for p in plans)
                for key in first["policies"][name]
            }
            line = {
                "bench": "plan", "trace": trace, "policy": name, "seeds": args.seeds,
                "queue_bound_hours": statistics.median(p["queue_bound_hours"] for p in plans),
                "work_bound_hours": first["work_bound_hours"],
                "static_machines_for_slo": first["static_machines_for_slo"],
                "plan_seconds": round(seconds, 1),
            } | figures  # fmt: skip
            print(json.dumps(line), flush=True)


if __name__ == "__main__":
    main()
