"""Erlang C: how many servers an M/M/c queue needs so that few jobs wait longer than a budget.

Pure arithmetic, shared by the scaler's policy (how many instances the arrival rate needs) and
the planner (the queue-aware lower bound), so that both speak of the same number.
"""

from __future__ import annotations

import math

DEFAULT_QUANTILE = 0.05  # "p95": at most 5 % of jobs may wait longer than the budget


def erlang_c(servers: int, load: float) -> float:
    """P(an arrival waits) in M/M/c with ``servers`` and offered ``load`` (erlangs), load < servers.

    Through the Erlang B recursion B(k) = a·B(k-1) / (k + a·B(k-1)), which stays within floating
    point for thousands of servers, where the textbook sum of a^k/k! overflows.
    """
    if load <= 0:
        return 0.0
    if servers <= load:
        return 1.0
    blocking = 1.0
    for k in range(1, servers + 1):
        blocking = load * blocking / (k + load * blocking)
    return servers * blocking / (servers - load * (1 - blocking))


def wait_exceeds(servers: int, rate: float, job_s: float, wait_s: float, scv: float = 1.0) -> float:
    """P(wait > ``wait_s``) in M/M/c at ``rate`` arrivals/s and mean service ``job_s``.

    ``scv`` (squared coefficient of variation of the job time; 1 for exponential jobs, the M/M/c
    case) scales the waits as in the Allen-Cunneen approximation of M/G/c: waits are (1 + scv) / 2
    of M/M/c's, so the tail decays 2 / (1 + scv) times as fast. Fixed-length jobs (scv 0) wait
    half as long as exponential ones; heavy-tailed ones (scv > 1) longer.
    """
    load = rate * job_s
    if load <= 0:
        return 0.0
    if servers <= load:
        return 1.0
    drain = (servers - load) / job_s * 2 / (1 + max(0.0, scv))  # (c·mu - lambda), corrected
    return erlang_c(servers, load) * math.exp(-drain * max(0.0, wait_s))


def servers_for(
    rate: float,
    job_s: float,
    wait_s: float,
    quantile: float = DEFAULT_QUANTILE,
    cap: int = 100_000,
    scv: float = 1.0,
) -> int:
    """The smallest c for which P(wait > ``wait_s``) ≤ ``quantile``; 0 when nothing arrives."""
    if rate <= 0 or job_s <= 0:
        return 0
    servers = max(1, math.floor(rate * job_s) + 1)
    while servers < cap and wait_exceeds(servers, rate, job_s, wait_s, scv) > quantile:
        servers += 1
    return servers


def expected_queue(servers: int, rate: float, job_s: float) -> float:
    """Mean number of jobs waiting (not yet running) in M/M/c; infinite when overloaded."""
    load = rate * job_s
    if load <= 0:
        return 0.0
    if servers <= load:
        return math.inf
    return erlang_c(servers, load) * load / (servers - load)
