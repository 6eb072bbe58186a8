"""The explorer's checker on hand-made evidence: every class, every rule, each made to fail."""

from __future__ import annotations

from lab.chaos.evidence import Evidence, Response
from lab.chaos.explore.checker import Context, Sent, check, classify, latency
from lab.client.activity import Line
from worker.state.claims import claim_key
from worker.state.layout import claim_path

T0 = 1_000_000.0


def body(request_id: str, text: str = "ok") -> str:
    return f'<response service="noop" status="success"><request requestId="{request_id}"/>{text}</response>'


def answer(request_id: str, text: str = "ok", at: float = T0 + 2, via: str = "queue") -> Response:
    return Response(request_id, f"m-{request_id}", via, body(request_id, text), at, "success", None)


def ran(request_id: str, end: float, seconds: float, worker: str = "i-1") -> Line:
    return Line(worker, f"m-{request_id}", request_id, "ran", "ok", "", seconds=f"{seconds:.3f}",
                at_ms=round(end * 1000))  # fmt: skip


def delivered(request_id: str, at: float, worker: str = "i-1") -> Line:
    return Line(worker, f"m-{request_id}", request_id, "delivered", "ok", "",
                at_ms=round(at * 1000))  # fmt: skip


def line(
    event: str, request_id: str, worker: str = "i-1", detail: str = "", message: str = ""
) -> Line:
    return Line(worker, message or f"m-{request_id}", request_id, event, "ok", detail,
                at_ms=round(T0 * 1000))  # fmt: skip


def sent(*keys: str) -> list[Sent]:
    return [Sent(k, T0) for k in keys]


def rule(verdict_rules: tuple[object, ...], name: str) -> object:
    return next(r for r in verdict_rules if r.name == name)  # type: ignore[attr-defined]


def test_each_request_gets_its_class() -> None:
    evidence = Evidence(
        queue=[answer("a"), answer("d"), answer("stray")],
        callbacks=[answer("b", via="callback"), answer("b", via="callback")],  # same body twice
        dead_letters={"dlq-1": "c", "dlq-2": "d"},
        activity=[ran("a", T0 + 1, 0.5), ran("b", T0 + 1, 0.5)],
    )
    classes = classify(evidence, sent("a", "b", "c", "d", "e"))
    assert classes == {
        "a": "answered",
        "b": "answered",  # a repeated callback with the same body is no duplicate effect
        "c": "dead_lettered",
        "d": "dead_lettered",  # answered and dead-lettered (a poison request): dead-lettered
        "e": "lost",
        "stray": "unexpected",
    }


def test_a_run_after_a_finished_one_is_a_duplicate_effect() -> None:
    evidence = Evidence(
        queue=[answer("a"), answer("b")],
        activity=[
            ran("a", T0 + 1, 0.5),
            delivered("a", T0 + 1.1),
            ran("a", T0 + 3, 0.5),  # began at T0 + 2.5, after the first ended at T0 + 1
            delivered("a", T0 + 3.1),
            ran("b", T0 + 1.0, 0.8),
            ran("b", T0 + 1.2, 0.8, worker="i-2"),  # overlapping deliveries: allowed
            delivered("b", T0 + 1.1),
            delivered("b", T0 + 1.3, worker="i-2"),
        ],
    )
    verdict = check(evidence, sent("a", "b"), Context())
    assert verdict.classes == {"a": "duplicate_effects", "b": "answered"}
    assert verdict.counts["duplicate_effects"] == 1
    found = rule(verdict.rules, "no duplicate effect")
    assert not found.passed  # type: ignore[attr-defined]
    # The detail is the evidence: both runs of "a", where and when, and one result published.
    assert found.detail.startswith("1: a (2 run(s): i-1 m-a ended ")  # type: ignore[attr-defined]
    assert found.detail.endswith("after 0.500 s; 1 different result(s))")  # type: ignore[attr-defined]
    assert not verdict.passed


def test_two_different_bodies_are_a_duplicate_effect() -> None:
    evidence = Evidence(queue=[answer("a", "one")], callbacks=[answer("a", "two", via="callback")])
    assert classify(evidence, sent("a")) == {"a": "duplicate_effects"}


def test_lost_and_unexpected_break_their_rules() -> None:
    verdict = check(Evidence(queue=[answer("nobody-sent-this")]), sent("a"), Context())
    assert verdict.counts == {
        "answered": 0, "duplicate_effects": 0, "lost": 1, "dead_lettered": 0, "unexpected": 1,
    }  # fmt: skip
    broken = {r.name for r in verdict.rules if not r.passed}
    assert broken == {"nothing lost", "no unexpected response"}


def test_a_clean_run_passes_every_rule() -> None:
    evidence = Evidence(
        queue=[answer("a")],
        dead_letters={"d1": "p"},
        activity=[ran("a", T0 + 1, 0.5), line("dead-letter", "p")],
        claims={claim_path(claim_key("", "a")): {"state": "done", "response": body("a")}},
    )
    verdict = check(evidence, sent("a", "p"), Context(fleet=[(T0, 2), (T0 + 5, 3)], bounds=(2, 3)))
    assert verdict.passed, verdict.rules
    assert verdict.counts["answered"] == 1 and verdict.counts["dead_lettered"] == 1


def test_fencing_catches_a_result_the_claim_does_not_hold() -> None:
    key = claim_path(claim_key("", "a"))
    evidence = Evidence(
        queue=[answer("a", "late zombie result")],
        claims={key: {"state": "done", "response": body("a", "the takeover's result")}},
    )
    verdict = check(evidence, sent("a"), Context())
    fencing = rule(verdict.rules, "no result published by a lost claim")
    assert not fencing.passed and "a" in fencing.detail  # type: ignore[attr-defined]


def test_fencing_keys_a_body_without_request_id_by_its_message_id() -> None:
    stray = Response("message:m-9", "m-9", "queue", body("", "x"), T0, "error", "MALFORMED_XML")
    key = claim_path(claim_key("m-9", None))
    evidence = Evidence(queue=[stray], claims={key: {"state": "done", "response": body("", "y")}})
    assert not rule(check(evidence, [Sent("message:m-9", T0)], Context()).rules,
                    "no result published by a lost claim").passed  # type: ignore[attr-defined]  # fmt: skip


def test_a_dead_letter_without_a_logged_reason_breaks_its_rule_and_tells_its_story() -> None:
    activity = [
        line("dead-letter", "a"),
        line("received", "-", worker="i-7", detail="receive #6", message="m-b"),
        line("claimed", "b", worker="i-7"),
    ]
    evidence = Evidence(dead_letters={"d1": "a", "d2": "b"}, activity=activity)
    found = rule(
        check(evidence, sent("a", "b"), Context()).rules, "every dead letter has a logged reason"
    )
    assert not found.passed  # type: ignore[attr-defined]
    assert found.detail.startswith("no reason for b; b: ")  # type: ignore[attr-defined]
    # "received" lines know only the message: they are part of the story all the same
    assert "i-7 received receive #6 | " in found.detail  # type: ignore[attr-defined]
    assert found.detail.endswith("i-7 claimed")  # type: ignore[attr-defined]


def published(request_id: str, at: float, worker: str = "i-1") -> Line:
    return Line(worker, f"m-{request_id}", request_id, "published", "ok", "",
                at_ms=round(at * 1000))  # fmt: skip


def test_result_mode_counts_only_a_run_begun_after_the_publication() -> None:
    evidence = Evidence(
        queue=[answer("a"), answer("a"), answer("b"), answer("c"), answer("d"), answer("d", "x")],
        activity=[
            # a: two overlapping runs, one published, both answered alike: no effect.
            ran("a", T0 + 1.0, 0.8), ran("a", T0 + 1.5, 0.8, worker="i-2"), published("a", T0 + 1.1),
            # b: the first run's publication failed, a later run published: no effect either.
            ran("b", T0 + 1, 0.5), ran("b", T0 + 5, 0.5), published("b", T0 + 5.1),
            # c: a run begun after the result was published: a duplicate effect.
            ran("c", T0 + 1, 0.5), published("c", T0 + 1.1), ran("c", T0 + 1.6, 0.2),
            # d: overlapping, but two different results delivered: a duplicate effect.
            ran("d", T0 + 1, 0.5), ran("d", T0 + 1.2, 0.5), published("d", T0 + 1.1),
        ],
    )  # fmt: skip
    classes = classify(evidence, sent("a", "b", "c", "d"))
    assert classes == {
        "a": "answered",
        "b": "answered",
        "c": "duplicate_effects",
        "d": "duplicate_effects",
    }
    # Without its "published" line, b is held to the lease rule: ran again after a finished run.
    lease = Evidence(
        queue=[answer("b")],
        activity=[ran("b", T0 + 1, 0.5), delivered("b", T0 + 1.1), ran("b", T0 + 5, 0.5)],
    )
    assert classify(lease, sent("b")) == {"b": "duplicate_effects"}


def test_a_lease_run_cut_off_before_its_result_was_published_had_no_effect() -> None:
    # Found by the soak: the body crashed 0.1 s after its binary ended, before the fenced finish;
    # the message came back and the taker ran it again. One effect: the taker's.
    taker = {"owner": "i-2", "state": "done", "token": 2, "message_id": "m-a", "response": "r"}

    def crash_then_takeover(finished_claim: dict[str, object]) -> Evidence:
        return Evidence(
            queue=[answer("a")],
            activity=[
                ran("a", T0 + 1, 0.5),
                ran("a", T0 + 9, 0.5, worker="i-2"),
                delivered("a", T0 + 9.1, worker="i-2"),
            ],
            claims={claim_path(claim_key("", "a")): finished_claim},
        )

    assert classify(crash_then_takeover(taker), sent("a")) == {"a": "answered"}
    # The finisher's run counts even when it crashed before delivering: a run after it did not
    # have to be (the stored response is re-sent without one).
    finished = crash_then_takeover(taker | {"owner": "i-1", "token": 1})
    assert classify(finished, sent("a")) == {"a": "duplicate_effects"}


def test_scale_in_that_kills_a_result_mode_job_is_caught() -> None:
    activity = [
        line("received", "a", worker="i-9", message="m1"),  # result mode: no claim line
        line("terminated", "-", worker="i-1-scaler", detail="i-9: drained and stopped"),
    ]
    found = rule(check(Evidence(activity=activity), [], Context()).rules,
                 "scale-in never kills a running job")  # fmt: skip
    assert not found.passed and "m1 on i-9" in found.detail  # type: ignore[attr-defined]
    ended = [*activity, line("busy", "a", worker="i-9", message="m1")]
    assert rule(check(Evidence(activity=ended), [], Context()).rules,
                "scale-in never kills a running job").passed  # type: ignore[attr-defined]  # fmt: skip


def test_scale_in_that_kills_a_claimed_job_is_caught() -> None:
    activity = [
        line("claimed", "a", worker="i-9", message="m1"),
        line("ran", "a", worker="i-9", message="m1"),
        line("claimed", "b", worker="i-9", message="m2"),  # never ended
        line("terminated", "-", worker="i-1-scaler", detail="i-9: drained and stopped"),
        line("claimed", "c", worker="i-8", message="m3"),  # i-8 crashed: not a scale-in
    ]
    found = rule(check(Evidence(activity=activity), [], Context()).rules,
                 "scale-in never kills a running job")  # fmt: skip
    assert not found.passed and "m2 on i-9" in found.detail  # type: ignore[attr-defined]
    fine = [x for x in activity if x.message_id != "m2"]
    assert rule(check(Evidence(activity=fine), [], Context()).rules,
                "scale-in never kills a running job").passed  # type: ignore[attr-defined]  # fmt: skip


def test_fleet_bounds_above_max_at_once_below_min_only_past_the_grace() -> None:
    def bounds_rule(samples: list[tuple[float, int]]) -> bool:
        context = Context(fleet=samples, bounds=(2, 4), below_min_grace_s=30)
        return bool(rule(check(Evidence(), [], context).rules, "fleet within min..max").passed)  # type: ignore[attr-defined]

    assert bounds_rule([(T0, 2), (T0 + 1, 4), (T0 + 2, 2)])
    assert not bounds_rule([(T0, 2), (T0 + 1, 5), (T0 + 2, 2)])
    assert bounds_rule([(T0, 2), (T0 + 1, 1), (T0 + 20, 1), (T0 + 21, 2)])  # a replacement
    assert not bounds_rule([(T0, 2), (T0 + 1, 1), (T0 + 40, 1), (T0 + 41, 2)])


def test_latency_from_first_send_to_first_answer() -> None:
    sends = [Sent("a", T0), Sent("a", T0 + 5), Sent("b", T0), Sent("c", T0)]
    evidence = Evidence(
        queue=[answer("a", at=T0 + 1), answer("a", at=T0 + 9), answer("b", at=T0 + 3)]
    )
    assert latency(evidence, sends) == {"count": 2, "p50_s": 2.0, "p95_s": 2.9, "max_s": 3.0}
    assert latency(Evidence(), sends)["count"] == 0


def test_copies_rejected_under_their_own_message_ids_are_no_duplicate_effect() -> None:
    def rejected(message_id: str, code: str) -> Response:
        text = (f'<response service="analyze" status="error"><request messageId="{message_id}" '
                f'requestId="bad"/><message code="{code}">no</message></response>')  # fmt: skip
        return Response("bad", message_id, "queue", text, T0 + 1, "error", code)

    same = Evidence(
        queue=[rejected("m-1", "PARAMETER_REJECTED"), rejected("m-2", "PARAMETER_REJECTED")]
    )
    assert classify(same, sent("bad")) == {"bad": "answered"}
    different = Evidence(
        queue=[rejected("m-1", "PARAMETER_REJECTED"), rejected("m-2", "BINARY_FAILED")]
    )
    assert classify(different, sent("bad")) == {"bad": "duplicate_effects"}


def test_an_instance_reclaimed_after_a_spot_notice_is_no_scale_in() -> None:
    # i-7 got a notice: it handed one job back and was reclaimed by EC2 in the middle of
    # another; the scaler never terminated it (no "drained and stopped" line), so the scale-in
    # rule has nothing to say about it. i-9 was drained by scale-in and ended its job.
    activity = [
        line("claimed", "a", worker="i-7", message="m1"),
        line("released", "a", worker="i-7", message="m1"),
        line("claimed", "b", worker="i-7", message="m2"),  # cut off by the reclaim
        line("claimed", "c", worker="i-9", message="m3"),
        line("ran", "c", worker="i-9", message="m3"),
        line("terminated", "-", worker="i-1-scaler", detail="i-9: drained and stopped"),
    ]
    found = rule(check(Evidence(activity=activity), [], Context()).rules,
                 "scale-in never kills a running job")  # fmt: skip
    assert found.passed and found.detail == "1 drained instance(s)"  # type: ignore[attr-defined]


def test_a_dead_letter_spent_by_the_nemesis_own_receive_is_explained_by_it() -> None:
    # The nemesis took b on its last receive: no worker saw it, the fault's line is the reason.
    evidence = Evidence(dead_letters={"d1": "a", "d2": "b"}, activity=[line("dead-letter", "a")])
    found = rule(
        check(evidence, sent("a", "b"), Context(spent=frozenset({"b"}))).rules,
        "every dead letter has a logged reason",
    )
    assert found.passed and "1 spent by the nemesis" in found.detail  # type: ignore[attr-defined]
    # ...and only those: a spent request does not excuse another one.
    evidence.dead_letters["d3"] = "c"
    found = rule(
        check(evidence, sent("a", "b", "c"), Context(spent=frozenset({"b"}))).rules,
        "every dead letter has a logged reason",
    )
    assert not found.passed and found.detail == "no reason for c; c: not in the activity log"  # type: ignore[attr-defined]


def test_a_dead_letter_whose_holder_died_on_its_last_receive_is_explained_by_it() -> None:
    # Found by the soak on LocalStack: a poison's sixth and last receive was taken by an
    # instance the nemesis crashed before its turn came. The worker says a last receive as it
    # takes it; a holder that logs no decision on it after that died holding it.
    held = line("last-receive", "-", worker="i-3", detail="receive #6: held here", message="m-b")
    evidence = Evidence(dead_letters={"m-b": "b"}, activity=[held])
    found = rule(
        check(evidence, sent("b"), Context()).rules, "every dead letter has a logged reason"
    )
    assert found.passed  # type: ignore[attr-defined]
    # A holder that lived and decided it (a retry on its last receive) owed a "dead-letter" line.
    decided = line("retry", "b", worker="i-3", message="m-b")
    evidence = Evidence(dead_letters={"m-b": "b"}, activity=[held, decided])
    found = rule(
        check(evidence, sent("b"), Context()).rules, "every dead letter has a logged reason"
    )
    assert not found.passed  # type: ignore[attr-defined]
    # Another worker's decision says nothing of this holder.
    other = line("retry", "b", worker="i-4", message="m-b")
    evidence = Evidence(dead_letters={"m-b": "b"}, activity=[held, other])
    assert not evidence.unexplained_dead_letters()


def test_a_worker_that_took_its_own_claim_over_again_had_one_effect() -> None:
    # Found on a fresh CI run under the explorer's resets: a worker's first run could not
    # finish (its claim write failed), the message came back to the same worker, which took its
    # own expired claim over (token 2) and ran again. One effect: the second run's.
    def claimed(token: str, at: float) -> Line:
        return Line("i-1", "m-a", "a", "claimed", "ok", f"token {token}", at_ms=round(at * 1000))

    def same_worker(finished_token: int) -> Evidence:
        return Evidence(
            queue=[answer("a")],
            activity=[
                claimed("1", T0 + 0.4),
                ran("a", T0 + 1, 0.5),
                claimed("2 (takeover)", T0 + 8.4),
                ran("a", T0 + 9, 0.5),
                delivered("a", T0 + 9.1),
            ],
            claims={claim_path(claim_key("", "a")): {"owner": "i-1", "state": "done",
                                                       "token": finished_token,
                                                       "response": "r"}},
        )  # fmt: skip

    assert classify(same_worker(2), sent("a")) == {"a": "answered"}
    # The first run finished the claim (token 1): the second had no business running.
    assert classify(same_worker(1), sent("a")) == {"a": "duplicate_effects"}
