"""The explorer's checker: evidence in, verdict out. No I/O and no clock, so that it can be
tested on hand-made evidence and trusted on real evidence.

Every request sent is put in one class, as Jepsen's total-queue checker does:
``answered`` once; ``duplicate_effects`` (two different response bodies, or a run that should not
have been: in lease mode one that began after another had finished, in result mode one that
began after the request's result was published); ``dead_lettered`` (in the dead-letter queue);
``lost`` (neither answered nor dead-lettered). A response to nothing sent is ``unexpected``.
Then the rules of DESIGN.md, on the same evidence.
"""

from __future__ import annotations

import re
import statistics
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from lab.chaos.evidence import Evidence
from lab.client.activity import Line
from worker.state.activity import EventName
from worker.state.claims import claim_key
from worker.state.layout import claim_path

CLASSES = ("answered", "duplicate_effects", "lost", "dead_lettered", "unexpected")
# A worker's own account that it began on a message (received it to process; claimed it) ...
BEGINNINGS: frozenset[EventName] = frozenset({"received", "claimed"})
# ... and that the message came to an end (any end but a kill).
ENDINGS: frozenset[EventName] = frozenset(
    {"ran", "error", "fenced", "retry", "delivered", "dead-letter", "released", "busy"}
)


@dataclass(frozen=True)
class Sent:
    """One message the explorer sent: the key its response will carry (the request id, or
    ``message:<id>`` for a body too broken to name one) and when (epoch seconds)."""

    key: str
    at: float
    message_id: str = ""


@dataclass(frozen=True)
class Rule:
    """One rule checked on the evidence."""

    name: str
    passed: bool
    detail: str = ""


@dataclass(frozen=True)
class Verdict:
    """What the checker found: each request's class, the counts, the rules, the latencies."""

    classes: Mapping[str, str]  # key -> class, for every key sent and every unexpected one
    rules: tuple[Rule, ...]
    latency: Mapping[str, float]

    @property
    def counts(self) -> dict[str, int]:
        """How many requests are in each class (every class named, zeros too)."""
        counts = dict.fromkeys(CLASSES, 0)
        for kind in self.classes.values():
            counts[kind] += 1
        return counts

    @property
    def passed(self) -> bool:
        """Every rule held."""
        return all(r.passed for r in self.rules)

    def keys(self, kind: str) -> list[str]:
        """The keys in class ``kind``, sorted."""
        return sorted(k for k, v in self.classes.items() if v == kind)


@dataclass(frozen=True)
class Context:
    """What the checker needs besides the evidence: the fleet's samples and bounds."""

    fleet: Sequence[tuple[float, int]] = ()  # (epoch seconds, instances pending or running)
    bounds: tuple[int, int] = (0, 1_000_000)  # the scaler's min and max
    below_min_grace_s: float = 45.0  # a replacement's time: stale heartbeat, tick, boot
    spent: frozenset[str] = frozenset()  # requests whose last receive the nemesis itself took
    extra: Mapping[str, Any] = field(default_factory=dict)


def check(evidence: Evidence, sent: Sequence[Sent], context: Context) -> Verdict:
    """Classify every request ``sent`` and check the rules on ``evidence``."""
    classes = classify(evidence, sent)
    counts = dict.fromkeys(CLASSES, 0)
    for kind in classes.values():
        counts[kind] += 1
    rules = (
        _count_rule("nothing lost", classes, "lost"),
        duplicates(evidence, classes),
        _count_rule("no unexpected response", classes, "unexpected"),
        fencing(evidence),
        dead_letters_explained(evidence, context.spent),
        scale_in_kills_nothing(evidence),
        fleet_within_bounds(context),
    )
    return Verdict(classes, rules, latency(evidence, sent))


def classify(evidence: Evidence, sent: Sequence[Sent]) -> dict[str, str]:
    """Each key sent -> its class; each key answered but never sent -> ``unexpected``."""
    bodies: dict[str, set[str]] = defaultdict(set)
    for response in evidence.responses:
        bodies[response.request_id].add(_result(response.body))
    runs = _runs(evidence.activity)
    published = _published(evidence.activity)
    dead = set(evidence.dead_letters.values())
    classes: dict[str, str] = {}
    for key in {s.key for s in sent}:
        again = _ran_again(runs.get(key, []), published.get(key), *_finisher(evidence, key))
        if len(bodies.get(key, ())) > 1 or again:
            classes[key] = "duplicate_effects"
        elif key in dead:
            classes[key] = "dead_lettered"
        elif key in bodies:
            classes[key] = "answered"
        else:
            classes[key] = "lost"
    for key in bodies:
        classes.setdefault(key, "unexpected")
    return classes


_MESSAGE_ID = re.compile(r'\smessageId="[^"]*"')


def _comparable(body: str) -> str:
    # The same response re-sent is byte-identical; normalise only line endings and edges.
    return body.replace("\r\n", "\n").strip()


def _result(body: str) -> str:
    """A response's result: its body without the message id. Two copies of a request that is
    rejected before any claim (an invalid resubmission) are answered each under its own
    message id with the same result: no effect at all, so no duplicate one. A second run that
    publishes shows as a second run, or under fencing."""
    return _MESSAGE_ID.sub("", _comparable(body))


@dataclass(frozen=True)
class Run:
    """One completed run of the binary: when it began and ended, where, under which claim token
    (its worker's last "claimed" line for the message; None in result mode), and whether that
    worker delivered its result afterwards."""

    start: float
    end: float
    worker: str
    message_id: str
    delivered: bool = False
    token: int | None = None


_TOKEN = re.compile(r"token (\d+)")


def _runs(activity: Sequence[Line]) -> dict[str, list[Run]]:
    """Completed runs per request, from each "ran" line's time and duration; each marked
    delivered when the same worker delivered the same message before it ran it again."""
    runs: dict[str, list[Run]] = defaultdict(list)
    open_runs: dict[tuple[str, str], tuple[str, int]] = {}  # (worker, message) -> its last run
    tokens: dict[tuple[str, str], int] = {}  # (worker, message) -> the token it last claimed
    for line in sorted(activity, key=lambda x: x.at_ms):
        where = (line.worker, line.message_id)
        if line.event == "claimed" and (found := _TOKEN.search(line.detail)):
            tokens[where] = int(found.group(1))
        elif line.event == "ran":
            end = line.at_ms / 1000
            took = 0.0 if line.seconds == "-" else float(line.seconds)
            run = Run(end - took, end, line.worker, line.message_id, token=tokens.get(where))
            runs[line.request_id].append(run)
            open_runs[where] = (line.request_id, len(runs[line.request_id]) - 1)
        elif line.event == "delivered" and where in open_runs:
            key, index = open_runs.pop(where)
            runs[key][index] = replace(runs[key][index], delivered=True)
    return runs


def _claim_path(key: str) -> str:
    """The claim document of a checked key (a request id, or ``message:<id>``)."""
    if key.startswith("message:"):
        return claim_path(claim_key(key.removeprefix("message:"), None))
    return claim_path(claim_key("", key))


def _finisher(evidence: Evidence, key: str) -> tuple[str | None, int | None]:
    """The worker whose finished claim holds the request's response, and the claim's token, if
    it is finished."""
    doc = evidence.claims.get(_claim_path(key)) or {}
    owner, token = doc.get("owner"), doc.get("token")
    if doc.get("state") != "done" or not isinstance(owner, str):
        return None, None
    return owner, token if isinstance(token, int) else None


def _published(activity: Sequence[Line]) -> dict[str, float]:
    """When each result-mode request's result was first published (its "published" lines)."""
    first: dict[str, float] = {}
    for line in activity:
        if line.event == "published":
            at = line.at_ms / 1000
            first[line.request_id] = min(first.get(line.request_id, at), at)
    return first


def _ran_again(
    runs: list[Run],
    published_at: float | None = None,
    finisher: str | None = None,
    finisher_token: int | None = None,
) -> bool:
    """True when a run should not have been.

    Result mode (``published_at``: the request's result was published then): a run that began
    after the publication. Overlapping runs, and a run after one whose publication failed,
    deliver the one published response and are no duplicate effect.

    Lease mode: a run that began after a run with an effect had ended -- one its worker
    delivered, or the run of ``finisher``, the worker whose finished claim holds the response,
    under that claim's token (``finisher_token``): a worker whose finish failed (fenced off its
    own claim, or the write unreachable) and that took its own claim over again later ran twice
    with one effect, the second run's. Found on a fresh CI run, under the explorer's resets.
    A run cut off before its result was published (its body crashed, or lost the claim between
    the run and the fenced finish: a zombie and its taker) had no effect, and the run that
    recovers it is the request's first: found by `lab chaos explore`'s soak, a crash 0.1 s
    after the binary ended had counted as a first run."""
    if published_at is not None:
        return any(run.start >= published_at for run in runs)

    def finished_it(run: Run) -> bool:
        if finisher is None or run.worker != finisher:
            return False
        return run.token is None or finisher_token is None or run.token == finisher_token

    effective = [r for r in runs if r.delivered or finished_it(r)]
    if not effective:
        return False
    first_end = min(r.end for r in effective)
    return any(run.start >= first_end for run in runs)


def _count_rule(name: str, classes: Mapping[str, str], kind: str) -> Rule:
    found = sorted(k for k, v in classes.items() if v == kind)
    return Rule(name, not found, f"{len(found)}: {', '.join(found[:10])}" if found else "")


def duplicates(evidence: Evidence, classes: Mapping[str, str]) -> Rule:
    """No duplicate effect; when there is one, its evidence: every run (instance, message,
    when it ended, how long) and how many different results were published."""
    found = sorted(k for k, v in classes.items() if v == "duplicate_effects")
    if not found:
        return Rule("no duplicate effect", True, "")
    return Rule(
        "no duplicate effect",
        False,
        f"{len(found)}: " + "; ".join(_duplicate_story(evidence, key) for key in found[:5]),
    )


def _duplicate_story(evidence: Evidence, key: str) -> str:
    runs = [
        f"{x.worker} {x.message_id[:8]} ended {_clock(x.at_ms)} after {x.seconds} s"
        for x in sorted(evidence.activity, key=lambda x: x.at_ms)
        if x.event == "ran" and x.request_id == key
    ]
    results = {_result(r.body) for r in evidence.responses if r.request_id == key}
    return f"{key} ({len(runs)} run(s): {', '.join(runs)}; {len(results)} different result(s))"


def _clock(at_ms: int) -> str:
    return time.strftime("%H:%M:%S", time.gmtime(at_ms / 1000)) + f".{at_ms % 1000:03d}"


def fencing(evidence: Evidence) -> Rule:
    """No result published by a lost claim: every response to a request whose claim is done
    carries the very response the claim's holder recorded (its conditional write won)."""
    stored: dict[str, str] = {}
    for key, doc in evidence.claims.items():
        if doc.get("state") == "done" and isinstance(doc.get("response"), str):
            stored[key] = _comparable(doc["response"])
    wrong = []
    for response in evidence.responses:
        expected = stored.get(_claim_path(response.request_id))
        if expected is not None and _comparable(response.body) != expected:
            wrong.append(response.request_id)
    detail = f"{len(wrong)} published without the claim: {', '.join(sorted(set(wrong))[:10])}"
    return Rule("no result published by a lost claim", not wrong, detail if wrong else "")


def dead_letters_explained(evidence: Evidence, spent: frozenset[str] = frozenset()) -> Rule:
    """Every request in the dead-letter queue has a "dead-letter" line with its reason -- or
    its last receive was the nemesis' own (``spent``), which no worker saw: that fault's line
    on the timeline is the reason."""
    unexplained = evidence.unexplained_dead_letters()
    bare = sorted(unexplained - spent)
    by_nemesis = len(unexplained & spent)
    if bare:
        stories = "".join(f"; {key}: {_story(evidence, key)}" for key in bare[:3])
        return Rule("every dead letter has a logged reason", False,
                    f"no reason for {', '.join(bare[:10])}{stories}")  # fmt: skip
    detail = f"{len(evidence.dead_letters)} dead letter(s)"
    if by_nemesis:
        detail += f", {by_nemesis} spent by the nemesis' own last receive"
    return Rule("every dead letter has a logged reason", True, detail)


def _story(evidence: Evidence, key: str, most: int = 16) -> str:
    """What the activity log says of one request: its lines, and the lines of every message
    that carried it ("received" lines know only the message), oldest first."""
    messages = {x.message_id for x in evidence.activity if x.request_id == key}
    told = [x for x in evidence.activity if x.request_id == key or x.message_id in messages]
    told.sort(key=lambda x: x.at_ms)
    said = [f"{_clock(x.at_ms)} {x.worker} {x.event} {x.detail}".rstrip() for x in told]
    return " | ".join(said[-most:]) if said else "not in the activity log"


def scale_in_kills_nothing(evidence: Evidence) -> Rule:
    """An instance the scaler terminated as drained had ended every message it began on
    (received to process, in either claim mode; claimed, in lease mode)."""
    drained = {
        x.detail.split(":", 1)[0]
        for x in evidence.lines("terminated")
        if x.detail.endswith("drained and stopped")
    }
    killed = []
    for worker in sorted(drained):
        claimed = {
            x.message_id for x in evidence.activity if x.worker == worker and x.event in BEGINNINGS
        }
        ended = {
            x.message_id for x in evidence.activity if x.worker == worker and x.event in ENDINGS
        }
        killed += [f"{m} on {worker}" for m in sorted(claimed - ended)]
    return Rule(
        "scale-in never kills a running job",
        not killed,
        ", ".join(killed[:10]) if killed else f"{len(drained)} drained instance(s)",
    )


def fleet_within_bounds(context: Context) -> Rule:
    """Never above the maximum; below the minimum no longer than a replacement takes."""
    low, high = context.bounds
    samples = sorted(context.fleet)
    above = [n for _, n in samples if n > high]
    longest, since = 0.0, None
    for at, n in samples:
        if n < low:
            since = at if since is None else since
            longest = max(longest, at - since)
        else:
            since = None
    sizes = [n for _, n in samples]
    detail = (
        f"sizes {min(sizes, default=0)}..{max(sizes, default=0)} within {low}..{high}; "
        f"longest below min {longest:.1f} s"
    )
    ok = not above and longest <= context.below_min_grace_s
    return Rule("fleet within min..max", ok, detail)


def latency(evidence: Evidence, sent: Sequence[Sent]) -> dict[str, float]:
    """Seconds from a request's first send to its first response: p50, p95, max, count."""
    first_sent: dict[str, float] = {}
    for s in sent:
        first_sent[s.key] = min(first_sent.get(s.key, s.at), s.at)
    first_answer: dict[str, float] = {}
    for r in evidence.responses:
        first_answer[r.request_id] = min(first_answer.get(r.request_id, r.at), r.at)
    waits = sorted(
        max(0.0, first_answer[k] - at) for k, at in first_sent.items() if k in first_answer
    )
    if not waits:
        return {"count": 0, "p50_s": 0.0, "p95_s": 0.0, "max_s": 0.0}
    p95 = statistics.quantiles(waits, n=20, method="inclusive")[-1] if len(waits) > 1 else waits[0]
    return {
        "count": len(waits),
        "p50_s": round(statistics.median(waits), 3),
        "p95_s": round(p95, 3),
        "max_s": round(waits[-1], 3),
    }
