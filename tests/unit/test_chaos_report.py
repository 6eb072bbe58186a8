"""The chaos tally and report: pure functions of the evidence."""

from __future__ import annotations

from lab.chaos.evidence import Evidence, Line, Response
from lab.chaos.harness import base_rules
from lab.chaos.report import Check, ScenarioReport, Tally, table
from lab.chaos.scenarios import SCENARIOS, named


def response(request_id: str, body: str = "<response/>", via: str = "queue") -> Response:
    return Response(request_id, f"m-{request_id}", via, body, 0.0, "success", None)


def line(request_id: str, event: str, worker: str = "i-1") -> Line:
    return Line(worker, f"m-{request_id}", request_id, event, "ok", "")


def test_the_tally_counts_from_the_evidence_alone() -> None:
    evidence = Evidence(
        queue=[response("a"), response("b"), response("b")],
        callbacks=[response("c", "<one/>", "callback"), response("c", "<two/>", "callback")],
        dead_letters={"m-d": "d"},
        activity=[line("a", "ran"), line("b", "ran"), line("b", "ran", "i-2"), line("c", "ran")],
    )
    tally = evidence.tally(["a", "b", "c", "d", "e"])
    # b ran twice; c was answered with two different bodies; e vanished.
    assert tally == Tally(sent=5, answered=3, duplicate_effects=2, dead_lettered=1, lost=1)


def test_base_rules_break_on_loss_unexplained_dead_letters_and_differing_answers() -> None:
    evidence = Evidence(
        callbacks=[response("c", "<one/>", "callback"), response("c", "<two/>", "callback")],
        dead_letters={"m-d": "d"},
    )
    checks = {c.rule: c for c in base_rules(evidence, ["c", "d", "e"])}
    assert not checks["nothing lost"].ok
    assert "1 of 3" in checks["nothing lost"].detail
    assert not checks["dead letters carry their reason"].ok
    assert not checks["repeated responses are identical"].ok
    evidence.activity.append(line("d", "dead-letter"))
    evidence.callbacks.pop()
    fixed = {c.rule: c.ok for c in base_rules(evidence, ["c", "d"])}
    assert all(fixed.values()), fixed


def test_a_broken_rule_or_an_error_fails_the_scenario_and_says_why() -> None:
    tally = Tally(1, 1, 0, 0, 0)
    good = ScenarioReport("x", tally, [Check("rule", True)], [(1.0, "crash i-1")], 3.0)
    broken = ScenarioReport("y", tally, [Check("rule", False, "2 runs")], [], 3.0)
    stuck = ScenarioReport("z", tally, [], [], 3.0, error="timed out")
    assert good.passed and not broken.passed and not stuck.passed
    assert broken.notes[0] == "BROKEN rule: 2 runs"
    assert stuck.notes[0] == "ERROR timed out"
    data = good.as_dict()
    assert set(data) >= {"name", "passed", "sent", "answered", "duplicate_effects",
                         "dead_lettered", "lost", "seconds", "notes"}  # fmt: skip
    assert data["timeline"] == [{"at": 1.0, "event": "crash i-1"}]
    rows = table([good, broken]).splitlines()
    assert rows[1].split()[:2] == ["x", "pass"] and rows[2].split()[:2] == ["y", "FAIL"]


def test_every_scenario_the_issue_names_is_there() -> None:
    names = {s.name for s in SCENARIOS}
    assert {"crash-mid-job", "zombie", "duplicate-delivery", "visibility-timeout", "no-heartbeat",
            "callback-flaky", "poison-message", "leader-lost", "bad-bundle", "demand-spike",
            "emulator-restart"} <= names  # fmt: skip
    assert [s.name for s in named("all")] == [s.name for s in SCENARIOS]
    assert all(s.summary.strip() for s in SCENARIOS)
