"""Errors of the capacity planner, under the lab's root (``LabError``)."""

from __future__ import annotations

from lab.errors import LabError


class PlanError(LabError):
    """Raised when a plan is asked for with settings that cannot work (bad names, ranges)."""

    code = "PLAN_ERROR"


class TraceError(PlanError):
    """Raised when a demand trace cannot be read or holds no usable counts."""

    code = "BAD_TRACE"


class PolicyViolation(PlanError):
    """Raised when a policy breaks a fleet rule: kills a running job, launches above its max."""

    code = "POLICY_VIOLATION"


class SimulationStalled(PlanError):
    """Raised when jobs wait and none finishes for a simulated day: the policy serves none."""

    code = "SIMULATION_STALLED"
