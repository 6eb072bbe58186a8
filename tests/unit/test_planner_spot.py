"""The spot overlay of `lab plan`: lost work under the notice, and cost against on-demand."""

from __future__ import annotations

import pytest

from lab.errors import LabError
from lab.planner.spot import SpotMix, figures, lost_work_s


def test_a_job_that_fits_in_the_notice_loses_nothing() -> None:
    assert lost_work_s(60, 120) == 0.0
    assert lost_work_s(120, 120) == 0.0
    # A 600 s job hit at a uniform point: finished if <= 120 s remain, else (600-120)/2 lost
    # with probability 480/600 -> 480^2 / 1200 = 192 s.
    assert lost_work_s(600, 120) == pytest.approx(192.0)


def test_all_on_demand_and_no_interruptions_cost_the_plain_price() -> None:
    got = figures(100, 50, 1000, 180, 120, 0.1, SpotMix(1.0, 0.7, 0.0))
    assert got["mixed_cost_usd"] == pytest.approx(3.0)  # 100 h at 0.03
    assert got["saving_pct"] == pytest.approx(70.0)
    assert got["interruptions"] == 0 and got["rerun_jobs"] == 0


def test_interruptions_add_boots_and_reruns() -> None:
    mix = SpotMix(0.5, 0.6, 0.1)  # 50 spot hours, 5 interruptions
    got = figures(100, 100, 10_000, 600, 120, 1.0, mix)
    assert got["interruptions"] == 5.0
    assert got["rerun_jobs"] == pytest.approx(5 * 0.8)  # busy always; 480/600 of hits lose the job
    extra = 5 * (192 + 120) / 3600
    assert got["extra_instance_hours"] == pytest.approx(extra, abs=1e-3)
    assert got["mixed_cost_usd"] == pytest.approx(50 * 1.0 + (50 + extra) * 0.4, abs=0.01)
    assert got["mixed_cost_per_1000_jobs_usd"] == pytest.approx(
        got["mixed_cost_usd"] / 10, abs=1e-3
    )


@pytest.mark.parametrize(
    ("fraction", "discount", "rate"),
    [(-0.1, 0.7, 0.0), (1.1, 0.7, 0.0), (0.5, 1.0, 0.0), (0.5, 0.7, -1)],
)
def test_bad_mixes_are_refused(fraction: float, discount: float, rate: float) -> None:
    with pytest.raises(LabError):
        SpotMix(fraction, discount, rate)
