"""The worker end to end: real messages on a real emulator, real worker and receiver processes."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import pytest
from lxml import etree
from support import wait_until

import schemas
from lab.client import samples
from lab.client.results import Result, from_queue, parse_response
from lab.client.submit import Auth, JobSpec, render_xml
from lab.runtime.procs import free_port
from worker.state.claims import claim_key

if TYPE_CHECKING:
    from conftest import Lab, Receiver, WorkerProc

pytestmark = pytest.mark.integration

StartWorker = Callable[..., "WorkerProc"]
CPUS = os.cpu_count() or 1  # fake_binary burns on every core: wall seconds = CPU seconds / CPUS
STRICT = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True)


def wall_seconds(seconds: float) -> float:
    """The header duration that makes fake_binary run ``seconds`` of wall time at speed 0.01."""
    return seconds * CPUS / 0.01


def fake_video(duration: float, fault: str | None = None) -> bytes:
    """A fake_binary input: its header sets the duration (CPU s = duration x speed) and fault."""
    header = f"FAKEVIDEO duration={duration:g}" + (f" fault={fault}" if fault else "")
    return header.encode() + b"\n" + bytes(range(256)) * 8


def request(
    service: str = "analyze",
    *,
    request_id: str | None = None,
    input_url: str | None = None,
    input_auth: tuple[str, str] | None = None,
    params: Sequence[tuple[str, str]] = (),
    callback: str | None = None,
    callback_auth: tuple[str, str] | None = None,
) -> str:
    """A request document (not checked against the schema: tests also build bad ones)."""
    spec = JobSpec(
        service=service,
        input_url=input_url,
        input_auth=Auth(*input_auth) if input_auth else None,
        params=params,
        response="callback" if callback else "queue",
        callback_url=callback,
        callback_auth=Auth(*callback_auth) if callback_auth else None,
        request_id=request_id,
    )
    return render_xml(spec).decode()


def queue_responses(lab: Lab, count: int, wait_s: float = 40) -> dict[str, Result]:
    """Take ``count`` responses off the response queue, keyed by message id (no repeats)."""
    found = from_queue(lab.clients.sqs, lab.env.response_queue_url, wait_s=wait_s, expect=count)
    by_id = {r.message_id: r for r in found}
    assert len(found) == count, f"expected {count} responses, got {len(found)}: {found}"
    assert len(by_id) == count, f"repeated responses: {found}"
    return by_id


def raw_responses(lab: Lab, count: int, wait_s: float = 30) -> list[str]:
    """Take response bodies off the queue as sent, until ``count`` came or ``wait_s`` passed."""
    sqs, url = lab.clients.sqs, lab.env.response_queue_url
    bodies: list[str] = []
    deadline = time.monotonic() + wait_s
    while len(bodies) < count and time.monotonic() < deadline:
        reply = sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        for message in reply.get("Messages", []):
            bodies.append(message["Body"])
            sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
    return bodies


def no_more_responses(lab: Lab, wait_s: float = 2) -> None:
    """Assert nothing else arrives on the response queue for ``wait_s``."""
    extra = raw_responses(lab, 1, wait_s)
    assert not extra, f"unexpected extra response: {extra}"


def callbacks_for(receiver: Receiver, count: int, timeout_s: float = 30) -> list[dict[str, object]]:
    """Wait until the receiver journal has ``count`` entries; return them."""
    return list(
        wait_until(
            lambda: (found := receiver.callbacks()) and len(found) >= count and found,
            timeout_s,
            f"{count} callback(s) at the receiver",
        )
    )


def tag() -> str:
    return uuid.uuid4().hex[:8]


# ------------------------------------------------------------------------------------ examples


def test_examples_succeed_and_analysis_is_deterministic(
    lab: Lab, receiver: Receiver, start_worker: StartWorker
) -> None:
    files = samples.make(receiver.media)
    samples.upload(lab.clients.s3, lab.env.bucket, files)
    bodies = {}
    for path in schemas.examples():
        text = path.read_text(encoding="utf-8")
        text = text.replace("127.0.0.1:8765", f"127.0.0.1:{receiver.port}")
        bodies[path.stem] = text.replace("s3://fleetlab-local/", f"s3://{lab.env.bucket}/")
    assert set(bodies) == {
        "analyze-callback",
        "analyze-queue",
        "audio-spectrogram-queue",
        "audio-stats-queue",
    }
    # The same input and R once more, under another request id (the same id would be a duplicate).
    bodies["analyze-queue-again"] = bodies["analyze-queue"].replace(
        'requestId="example-analyze-queue"', 'requestId="example-analyze-queue-again"'
    )
    start_worker(lab)
    sent = {name: lab.send(body) for name, body in bodies.items()}

    by_id = queue_responses(lab, 4)
    results = {name: by_id[sent[name]] for name in sent if name != "analyze-callback"}
    for name, result in results.items():
        assert result.status == "success", (name, result)
        assert result.code is None
        assert result.raw_output or result.files, name
    [callback] = callbacks_for(receiver, 1)
    assert callback["message_id"] == sent["analyze-callback"]
    assert callback["status"] == "success"
    assert callback["auth_ok"] is True
    assert callback["repeat"] is False
    by_callback = parse_response(str(callback["body"]), "callback")
    assert by_callback.request_id == "example-analyze-callback"

    first, again = results["analyze-queue"], results["analyze-queue-again"]
    assert first.request_id == "example-analyze-queue"
    assert again.request_id == "example-analyze-queue-again"
    assert first.raw_output == again.raw_output  # same input bytes, same R
    assert len(first.raw_output.split()) == 20  # two rows of ten numbers
    # The callback example analyses the same bytes (served over HTTP) with R=-100: other numbers.
    assert by_callback.raw_output and by_callback.raw_output != first.raw_output

    assert "RMS" in (results["audio-stats-queue"].raw_output or "")
    [png_url] = results["audio-spectrogram-queue"].files
    bucket, key = png_url.removeprefix("s3://").split("/", 1)
    assert bucket == lab.env.bucket
    assert lab.get_bytes(key).startswith(b"\x89PNG\r\n\x1a\n")


# ----------------------------------------------------------------------------------- bad input

XXE = (
    '<?xml version="1.0"?>\n<!DOCTYPE request [<!ENTITY x SYSTEM "file:///etc/passwd">]>\n'
    '<request service="analyze"><input type="http" url="http://example.com/&x;"/>'
    '<output type="queue"/></request>'
)
LAUGHS = (
    '<?xml version="1.0"?>\n<!DOCTYPE lolz [\n<!ENTITY lol "lol">\n'
    + "".join(
        f'<!ENTITY lol{i} "{f"&lol{i - 1};" * 10 if i > 1 else "&lol;" * 10}">\n'
        for i in range(1, 10)
    )
    + ']>\n<request service="analyze">&lol9;</request>'
)


def test_bad_requests_get_clear_errors_and_the_worker_goes_on(
    lab: Lab, receiver: Receiver, start_worker: StartWorker
) -> None:
    good_input = lab.put_bytes("in/good.fakevideo", fake_video(10))
    big_s3 = lab.put_bytes("in/big.fakevideo", fake_video(10) + bytes(40_000))
    (receiver.media / "big.mov").write_bytes(fake_video(10) + bytes(40_000))
    refused = f"http://127.0.0.1:{free_port()}/media/convert.mov"
    media, auth = f"{receiver.url}/media", receiver.media_auth
    worker = start_worker(lab, FLEETLAB_MAX_REQUEST_BYTES="2048", FLEETLAB_MAX_INPUT_BYTES="20000")
    padding = "<!-- " + "x" * 2100 + " -->"
    metadata = "http://169.254.169.254/latest/meta-data/"
    cases = {
        "malformed": (
            "<request service='analyze'><output type='queue'></request>",
            "MALFORMED_XML",
        ),
        "not xml": ("hello, worker", "MALFORMED_XML"),
        "xxe": (XXE, "DTD_FORBIDDEN"),
        "billion laughs": (LAUGHS, "DTD_FORBIDDEN"),
        "wrong root": ('<job service="analyze"><output type="queue"/></job>', "INVALID_REQUEST"),
        "oversize": (
            request(input_url=good_input).replace("<output", padding + "<output"),
            "REQUEST_TOO_LARGE",
        ),
        "unknown service": (request("transcode", input_url=good_input), "UNKNOWN_SERVICE"),
        "disallowed parameter": (
            request(input_url=good_input, params=[("X", "1")]),
            "PARAMETER_REJECTED",
        ),
        "R out of range": (
            request(input_url=good_input, params=[("R", "5000")]),
            "PARAMETER_REJECTED",
        ),
        "media 404": (
            request(input_url=f"{media}/missing.mov", input_auth=auth),
            "INPUT_UNAVAILABLE",
        ),
        "s3 404": (request(input_url=f"s3://{lab.env.bucket}/in/missing"), "INPUT_UNAVAILABLE"),
        "connection refused": (request(input_url=refused), "INPUT_UNAVAILABLE"),
        "metadata input": (request(input_url=metadata), "URL_REJECTED"),
        "metadata callback": (request(input_url=good_input, callback=metadata), "URL_REJECTED"),
        # Schema-invalid and naming a refused callback: the salvaged URL is never contacted.
        "invalid, metadata callback": (
            request(input_url=good_input, callback=metadata).replace("<output", "<bogus/><output"),
            "INVALID_REQUEST",
        ),
        "input too large (s3)": (request(input_url=big_s3), "INPUT_TOO_LARGE"),
        "input too large (http)": (
            request(input_url=f"{media}/big.mov", input_auth=auth),
            "INPUT_TOO_LARGE",
        ),
    }
    assert len(cases["oversize"][0]) > 2048
    assert len(LAUGHS) < 2048  # refused for its DTD, not its size
    sent = {lab.send(body): (name, code) for name, (body, code) in cases.items()}
    # A schema violation (an unknown element) whose output names a callback: the error goes there.
    invalid = request(
        request_id="invalid-with-callback",
        input_url=good_input,
        callback=f"{receiver.url}/callback",
        callback_auth=receiver.callback_auth,
    ).replace("<output", "<bogus/><output")
    invalid_id = lab.send(invalid)

    by_id = queue_responses(lab, len(cases))
    assert set(by_id) == set(sent)
    for message_id, result in by_id.items():
        name, code = sent[message_id]
        assert (result.status, result.code) == ("error", code), (name, result)
        assert result.message, name
    [callback] = callbacks_for(receiver, 1)
    assert callback["message_id"] == invalid_id
    assert callback["auth_ok"] is True
    result = parse_response(str(callback["body"]), "callback")
    assert (result.status, result.code) == ("error", "INVALID_REQUEST")
    assert result.request_id == "invalid-with-callback"
    # The refused metadata callback was never contacted: its error went to the queue at once.
    for refused in ("metadata callback", "invalid, metadata callback"):
        [metadata_id] = [m for m, (name, _) in sent.items() if name == refused]
        [delivered] = worker.wait_for("delivered", metadata_id)
        assert delivered.detail.startswith("queue,"), delivered
    assert not worker.events("ran")  # none of these got as far as the binary

    # The worker goes on: a good request after all of that succeeds.
    good_id = lab.send(request(input_url=good_input, params=[("R", "7")]))
    assert queue_responses(lab, 1)[good_id].status == "success"
    assert worker.proc.poll() is None


def test_binary_failures_and_timeouts_are_errors_and_garbage_stays_xml(
    lab: Lab, start_worker: StartWorker
) -> None:
    inputs = {
        fault: lab.put_bytes(f"in/{fault}.fakevideo", fake_video(1, fault))
        for fault in ("exit", "crash", "garbage", "hang")
    }
    good = lab.put_bytes("in/good.fakevideo", fake_video(1))
    worker = start_worker(lab, FLEETLAB_RUN_TIMEOUT="2")
    sent = {lab.send(request(input_url=url)): fault for fault, url in inputs.items()}

    bodies = raw_responses(lab, len(sent), wait_s=40)
    assert len(bodies) == len(sent)
    found: dict[str, tuple[Result, bytes]] = {}
    for body in bodies:
        data = body.encode()
        etree.fromstring(data, STRICT)  # every response is well-formed XML, garbage or not
        result = parse_response(data, "queue")
        found[sent[result.message_id]] = (result, data)
    assert set(found) == set(inputs)
    exited, crashed, hung = found["exit"][0], found["crash"][0], found["hang"][0]
    assert (exited.status, exited.code) == ("error", "BINARY_FAILED")
    assert "status 3" in exited.message
    # A crash may be the machine's fault: retried on each receive, answered on the last one,
    # and kept in the dead-letter queue (a poison request) rather than deleted.
    assert (crashed.status, crashed.code) == ("error", "BINARY_CRASHED")
    assert "SIGABRT on each of 3 receives" in crashed.message
    crash_id = next(m for m, fault in sent.items() if fault == "crash")
    assert len(worker.events("retry", crash_id)) == 2
    [dead] = worker.wait_for("dead-letter", crash_id)  # its reason: the error it was answered with
    assert (dead.status, dead.detail) == (
        "BINARY_CRASHED",
        f"{crashed.message}; answered, and left for the dead-letter queue",
    )
    wait_until(lambda: lab.depth(lab.env.dead_letter_queue_url)[0] == 1, 20, "the DLQ")
    assert (hung.status, hung.code) == ("error", "BINARY_TIMEOUT")
    garbage, data = found["garbage"]
    assert garbage.status == "success"
    assert garbage.raw_output is not None
    assert "<not-a-tag> & ]]>" in garbage.raw_output
    # Past the inline limit the head stays inline and names the whole output, stored in S3.
    [whole] = garbage.files
    assert garbage.raw_output.endswith(f"stored whole at {whole}]")
    stored = lab.get_bytes(whole.split("/", 3)[3])
    assert len(stored) > 64 * 1024 and stored.startswith(b"1 2 3 <not-a-tag> & ]]>")
    assert b"\x00" not in data and b"\x1b" not in data

    good_id = lab.send(request(input_url=good, params=[("R", "1")]))
    assert queue_responses(lab, 1)[good_id].status == "success"
    assert worker.proc.poll() is None


# ------------------------------------------------------------------------------------- secrets


def test_secrets_never_reach_a_log(lab: Lab, receiver: Receiver, start_worker: StartWorker) -> None:
    samples.make(receiver.media)
    t = tag()
    wrong_input_pw = f"wrong-input-pw-{t}"
    userinfo_pw = f"userinfo-pw-{t}"
    long_pw = (f"long-pw-{t}-" * 30)[:300]  # over the schema's 256: the error names the value
    callback_userinfo_pw = f"cb-userinfo-pw-{t}"
    secrets = [
        receiver.media_auth[1],
        receiver.callback_auth[1],
        wrong_input_pw,
        userinfo_pw,
        f"long-pw-{t}",
        callback_userinfo_pw,
    ]
    media = f"{receiver.url}/media/convert.mov"
    callback = f"{receiver.url}/callback"
    worker = start_worker(lab)
    queued = [
        lab.send(request(input_url=media, input_auth=("dirk", wrong_input_pw))),
        lab.send(request(input_url=media.replace("//", f"//dirk:{userinfo_pw}@"))),
        lab.send(
            request(
                input_url=media,
                callback=f"http://dirk:{callback_userinfo_pw}@169.254.169.254/cb",
            )
        ),
    ]
    called = [
        lab.send(
            request(
                input_url=media,
                input_auth=receiver.media_auth,
                params=[("R", "-100")],
                callback=callback,
                callback_auth=receiver.callback_auth,
            )
        ),
        lab.send(
            request(
                input_url=media,
                input_auth=("dirk", long_pw),
                callback=callback,
                callback_auth=receiver.callback_auth,
            )
        ),
    ]
    by_id = queue_responses(lab, len(queued))
    assert set(by_id) == set(queued)
    assert all(r.status == "error" for r in by_id.values()), by_id
    journal = {str(e["message_id"]): e for e in callbacks_for(receiver, len(called))}
    assert set(journal) == set(called)
    assert journal[called[0]]["status"] == "success"
    assert parse_response(str(journal[called[1]]["body"]), "cb").code == "INVALID_REQUEST"
    assert worker.stop() == 0  # a clean stop ships the last activity lines to CloudWatch

    activity = worker.activity_text()
    output = worker.log_text()
    central = "\n".join(lab.log_events())
    for message_id in queued + called:  # the logs are real and complete ...
        assert message_id in activity
        assert message_id in central
    for secret in secrets:  # ... and hold no secret
        assert secret not in activity, secret
        assert secret not in output, secret
        assert secret not in central, secret


# ---------------------------------------------------------------------------------- duplicates


def test_duplicate_messages_and_resubmissions_run_once(lab: Lab, start_worker: StartWorker) -> None:
    url = lab.put_bytes("in/clip.fakevideo", fake_video(10))
    request_id = f"dup-{tag()}"
    body = request(request_id=request_id, input_url=url, params=[("R", "3")])
    worker = start_worker(lab)
    first = lab.send(body)
    second = lab.send(body)

    bodies = raw_responses(lab, 2)
    assert len(bodies) == 2
    assert bodies[0] == bodies[1]  # byte for byte: the stored response is re-sent
    result = parse_response(bodies[0], "queue")
    assert (result.status, result.message_id, result.request_id) == (
        "success",
        first,
        request_id,
    )
    assert len(worker.events("ran", request_id=request_id)) == 1
    assert len(worker.events("duplicate", second)) == 1
    claim = lab.claim(claim_key(first, request_id))
    assert (claim["token"], claim["state"], claim["message_id"]) == (1, "done", first)
    assert claim["response"] == bodies[0]

    # Resubmitted after completion: the stored response again, still no second run.
    third = lab.send(body)
    [again] = raw_responses(lab, 1)
    assert again == bodies[0]
    no_more_responses(lab)
    assert len(worker.events("ran", request_id=request_id)) == 1
    assert len(worker.events("duplicate", third)) == 1
    wait_until(lambda: lab.depth() == (0, 0), 10, "the request queue to be empty")


# ----------------------------------------------------------------------------------- callbacks


def test_callback_retried_until_delivered_once_with_auth(
    lab: Lab, receiver: Receiver, start_worker: StartWorker
) -> None:
    receiver.control(fail_next=2)
    worker = start_worker(lab)
    message_id = lab.send(
        request(
            "noop",
            request_id=f"cb-{tag()}",
            callback=f"{receiver.url}/callback",
            callback_auth=receiver.callback_auth,
        )
    )
    [entry] = callbacks_for(receiver, 1)
    assert entry["message_id"] == message_id
    assert (entry["status"], entry["auth_ok"], entry["repeat"]) == ("success", True, False)
    [delivered] = worker.wait_for("delivered", message_id)
    assert delivered.detail == "callback, 3 attempt(s)"
    wait_until(lambda: lab.depth() == (0, 0), 10, "the request to be deleted")
    time.sleep(1)
    assert len(receiver.callbacks()) == 1
    assert len(worker.events("ran", message_id)) == 1


def test_undeliverable_callback_ends_in_the_dead_letter_queue(
    make_lab: Callable[..., Lab], receiver: Receiver, start_worker: StartWorker
) -> None:
    lab = make_lab(visibility_timeout_s=2, max_receive_count=3)
    receiver.control(fail_next=10_000)
    worker = start_worker(lab, FLEETLAB_CALLBACK_ATTEMPTS="2")
    body = request(
        "noop",
        request_id=f"dlq-{tag()}",
        callback=f"{receiver.url}/callback",
        callback_auth=receiver.callback_auth,
    )
    message_id = lab.send(body)
    sqs, dlq = lab.clients.sqs, lab.env.dead_letter_queue_url

    def dead_lettered() -> list[dict[str, Any]]:
        reply = sqs.receive_message(QueueUrl=dlq, MaxNumberOfMessages=10, WaitTimeSeconds=1)
        return list(reply.get("Messages", []))

    [dead] = wait_until(dead_lettered, 45, "the message in the dead-letter queue")
    assert dead["MessageId"] == message_id
    assert dead["Body"] == body
    [line] = worker.wait_for("dead-letter", message_id)
    assert line.status == "DELIVERY_FAILED"
    assert "HTTP 500" in line.detail
    assert len(worker.events("retry", message_id)) == lab.env.max_receive_count - 1
    assert len(worker.events("ran", message_id)) == 1  # later receives re-send, never re-run
    assert receiver.callbacks() == []
    assert lab.depth() == (0, 0)


# ------------------------------------------------------------------------------ crash, drain


def test_killed_worker_job_is_taken_over_after_the_visibility_timeout(
    make_lab: Callable[..., Lab], start_worker: StartWorker
) -> None:
    # Room for a "busy" round (the dead worker's lease may outlive the message's invisibility).
    lab = make_lab(visibility_timeout_s=4, max_receive_count=5)
    url = lab.put_bytes("in/long.fakevideo", fake_video(wall_seconds(3)))
    request_id = f"kill-{tag()}"
    first = start_worker(lab, name="worker-a")
    message_id = lab.send(request(request_id=request_id, input_url=url))
    first.wait_for("claimed", message_id)
    time.sleep(0.5)  # fetched, binary running
    assert first.kill(), "the binary was not running when the worker was killed"
    assert not first.events("ran") and not first.events("delivered")

    began = time.monotonic()
    second = start_worker(lab, name="worker-b")
    bodies = raw_responses(lab, 1, wait_s=60)
    assert len(bodies) == 1
    result = parse_response(bodies[0], "queue")
    assert (result.status, result.message_id, result.request_id) == (
        "success",
        message_id,
        request_id,
    )
    assert time.monotonic() - began >= 1  # it waited for the message to come back
    no_more_responses(lab)
    [claimed] = second.events("claimed", message_id)
    assert claimed.detail == "token 2 (takeover)"
    assert len(second.events("ran", message_id)) == 1
    claim = lab.claim(claim_key(message_id, request_id))
    assert (claim["token"], claim["owner"], claim["state"]) == (2, "worker-b", "done")
    wait_until(lambda: lab.depth() == (0, 0), 10, "the request to be deleted")


def test_sigterm_drains_the_running_job(lab: Lab, start_worker: StartWorker) -> None:
    url = lab.put_bytes("in/drain.fakevideo", fake_video(wall_seconds(2)))
    worker = start_worker(lab)
    message_id = lab.send(request(request_id=f"drain-{tag()}", input_url=url))
    worker.wait_for("claimed", message_id)
    worker.terminate()
    assert worker.proc.wait(timeout=30) == 0
    events = [a.event for a in worker.activity() if a.message_id in (message_id, "-")]
    assert events[-5:] == ["claimed", "ran", "delivered", "deleted", "stopped"], events
    assert queue_responses(lab, 1)[message_id].status == "success"
    wait_until(lambda: lab.depth() == (0, 0), 10, "the request queue to be empty")


def test_sigterm_in_a_long_poll_waits_it_out_and_hands_back_what_it_brought(
    make_lab: Callable[..., Lab], start_worker: StartWorker
) -> None:
    # Found by `lab chaos explore` on LocalStack: a drain cut the idle long poll short; the
    # emulator went on polling for the client that had gone and handed it the next message, which
    # stayed in flight with a receive spent (its last: a dead letter no worker had seen). SQS
    # does the same for a poll whose client gives up (the SDK docs: keep the read timeout above
    # the wait). A message sent into the rest of the poll must come back at once, said so.
    lab = make_lab(visibility_timeout_s=60)
    worker = start_worker(lab, FLEETLAB_WAIT_TIME="5")
    time.sleep(1.0)  # "started" is logged just before the first receive: now it polls
    worker.terminate()
    url = lab.put_bytes("in/late.fakevideo", fake_video(0.1))
    message_id = lab.send(request(request_id=f"late-{tag()}", input_url=url))
    assert worker.proc.wait(timeout=30) == 0
    assert lab.depth() == (1, 0)  # visible again, not in flight for the visibility timeout
    [released] = worker.events("released", message_id)
    assert released.detail == "draining"
    assert not worker.events("claimed", message_id)


def test_heartbeat_keeps_a_long_job_invisible(lab: Lab, start_worker: StartWorker) -> None:
    assert lab.env.visibility_timeout_s == 4
    url = lab.put_bytes("in/long.fakevideo", fake_video(wall_seconds(6)))
    worker = start_worker(lab)
    message_id = lab.send(request(request_id=f"beat-{tag()}", input_url=url))
    worker.wait_for("claimed", message_id)
    # While the job runs, the message must never become visible again (nobody else could take it
    # from a lone worker, so watch the queue itself).
    depths = []
    while not worker.events("ran", message_id):
        worker.alive_or_fail()
        depths.append(lab.depth())
        time.sleep(0.2)
    assert len(depths) > 20  # sampled over more than the visibility timeout
    assert set(depths) == {(0, 1)}, depths
    bodies = raw_responses(lab, 1, wait_s=30)
    assert len(bodies) == 1
    assert parse_response(bodies[0], "queue").status == "success"
    [ran] = worker.events("ran", message_id)
    assert float(ran.seconds) > 1.25 * lab.env.visibility_timeout_s  # longer than the timeout
    no_more_responses(lab)
    assert len(worker.events("received", message_id)) == 1  # it never came back
    assert not worker.events("duplicate") and not worker.events("busy")
    wait_until(lambda: lab.depth() == (0, 0), 10, "the request queue to be empty")


@pytest.mark.timeout(400)  # an 8 s job, which a loaded machine stretches to minutes
def test_a_copy_busy_on_its_last_receive_is_dead_lettered_with_its_reason(
    make_lab: Callable[..., Lab], start_worker: StartWorker
) -> None:
    # Found by `lab chaos explore`: a resubmission that arrived while its request ran longer
    # than its receives last spent them all on "busy", and SQS moved it to the dead-letter
    # queue with no line saying why.
    lab = make_lab(visibility_timeout_s=2, max_receive_count=2)
    url = lab.put_bytes("in/long.fakevideo", fake_video(wall_seconds(8)))
    body = request(request_id=f"busy-{tag()}", input_url=url)
    first = start_worker(lab, name="worker-a")
    original = lab.send(body)
    first.wait_for("claimed", original)
    second = start_worker(lab, name="worker-b")
    copy = lab.send(body)
    [line] = second.wait_for("dead-letter", copy, timeout_s=120)  # slow on a loaded machine
    assert line.status == "CLAIM_BUSY"
    assert "the holder answers" in line.detail
    assert len(second.events("busy", copy)) == lab.env.max_receive_count - 1
    [answer] = raw_responses(lab, 1, wait_s=240)
    assert parse_response(answer, "queue").message_id == original
    assert len(first.events("ran", original)) == 1 and not second.events("ran")
