"""Derive the planner's real traces from the npm package vega-datasets (3.2.1).

    npm pack vega-datasets@3.2.1 && tar xzf vega-datasets-3.2.1.tgz
    python scripts/derive_traces.py package/data lab/planner/traces

writes ``flights-2001.txt`` (US flight departures per minute, four weeks from Monday 2001-02-05)
and ``usgs-quakes.txt`` (events per second of one week of USGS's earthquake feed). Reading the
flights needs ``pyarrow`` (the source is Parquet), which the project itself does not: install it
in a throwaway virtualenv. Provenance and licences: ``lab/planner/traces/README.md``.
"""

from __future__ import annotations

import argparse
import collections
import datetime as dt
import json
from pathlib import Path

FLIGHTS_FROM = dt.datetime(2001, 2, 5)  # a Monday
FLIGHTS_DAYS = 28
PER_LINE = 60  # one hour of minutes a line

FLIGHTS_HEAD = """\
# flights-2001: US domestic flight departures per minute, 2001-02-05 00:00 to 2001-03-05 00:00
# (28 days from a Monday, 40,320 one-minute bins, 457,553 flights), counted from the `date`
# column of flights-3m.parquet in the npm package vega-datasets 3.2.1 (U.S. Bureau of
# Transportation Statistics on-time data; a work of the U.S. federal government). One sequence
# of counts; the planner reads it with 60-second bins. Derivation: lab/planner/traces/README.md.
"""

QUAKES_HEAD = """\
# usgs-quakes: seismic events per second in the USGS "all earthquakes, past week" feed as
# sampled on 2018-01-31 to 2018-02-07 (1,707 events; second 0 is 2018-01-31 01:49:59 UTC),
# from earthquakes.json in the npm package vega-datasets 3.2.1 (U.S. public domain, USGS).
# `SECOND COUNT` lines, seconds without an event left out; the planner reads it with 1-second
# bins. Derivation: lab/planner/traces/README.md.
"""


def flights(data: Path) -> str:
    """Departures per minute over the four weeks, an hour of minutes a line."""
    import pyarrow.parquet as pq  # noqa: PLC0415 -- only this derivation needs it

    dates = pq.read_table(data / "flights-3m.parquet", columns=["date"]).column("date")
    minutes = FLIGHTS_DAYS * 1440
    counts = collections.Counter(
        int((when - FLIGHTS_FROM).total_seconds() // 60) for when in dates.to_pylist()
    )
    row = [str(counts.get(m, 0)) for m in range(minutes)]
    lines = (" ".join(row[i : i + PER_LINE]) for i in range(0, minutes, PER_LINE))
    return FLIGHTS_HEAD + "\n".join(lines) + "\n"


def quakes(data: Path) -> str:
    """Events per second from the first event, busy seconds only."""
    features = json.loads((data / "earthquakes.json").read_text("utf-8"))["features"]
    times = sorted(int(f["properties"]["time"]) // 1000 for f in features)
    counts = collections.Counter(t - times[0] for t in times)
    return QUAKES_HEAD + "".join(f"{s} {n}\n" for s, n in sorted(counts.items()))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("data", type=Path, help="vega-datasets' data folder")
    parser.add_argument("out", type=Path, help="where the traces go")
    args = parser.parse_args()
    (args.out / "flights-2001.txt").write_text(flights(args.data), "utf-8")
    (args.out / "usgs-quakes.txt").write_text(quakes(args.data), "utf-8")


if __name__ == "__main__":
    main()
