"""What an instance costs: a small table of on-demand prices, stated as an assumption.

Prices are AWS's published on-demand rates for Linux in us-east-1 as of 2024 (the most recent
this project checked by hand); other regions cost up to ~30 % more. They are a planning figure
for `lab provision` and `lab plan`, never billed truth: the AWS pricing pages are.
"""

from __future__ import annotations

from dataclasses import dataclass

REGION = "us-east-1"
AS_OF = "2024"
HOURS_PER_MONTH = 730  # AWS's own convention (365 * 24 / 12)
EBS_GP3_GB_MONTH = 0.08  # the root volume, per GiB and month

ON_DEMAND_USD_PER_HOUR = {
    "t3.micro": 0.0104,
    "t3.small": 0.0208,
    "t3.medium": 0.0416,
    "t3.large": 0.0832,
    "c5.large": 0.085,
    "c6i.large": 0.085,
    "c7i.large": 0.08925,
    "c7i.xlarge": 0.1785,
    "c7i.2xlarge": 0.357,
    "m7i.large": 0.1008,
}


@dataclass(frozen=True)
class Price:
    """The assumed hourly on-demand price of one instance type."""

    instance_type: str
    usd_per_hour: float

    def monthly(self, instances: int, root_gb: int = 8) -> float:
        """What ``instances`` always-on instances cost a month, root volumes included."""
        return instances * (self.usd_per_hour * HOURS_PER_MONTH + root_gb * EBS_GP3_GB_MONTH)


def price(instance_type: str) -> Price | None:
    """The assumed price of ``instance_type``, or None when the table has none."""
    found = ON_DEMAND_USD_PER_HOUR.get(instance_type)
    return None if found is None else Price(instance_type, found)


def statement(instance_type: str, min_instances: int) -> str:
    """The cost lines `lab provision` prints before it does anything."""
    found = price(instance_type)
    if found is None:
        head = f"cost: no price assumption for {instance_type}; see the AWS on-demand price list"
    else:
        floor = found.monthly(min_instances)
        head = (
            f"cost: {instance_type} assumed ${found.usd_per_hour:.5g}/h on demand "
            f"({REGION}, Linux, {AS_OF} list price); {min_instances} always-on instance(s) "
            f"≈ ${floor:,.2f}/month with an 8 GiB gp3 root volume each"
        )
    return (
        head + "\n      queues, bucket and logs cost cents at this scale; for a month's estimate "
        "under your load run `lab plan --jobs-per-day N --job-seconds S` and multiply its "
        "instance-hours by the hourly price"
    )
