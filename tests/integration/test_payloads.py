"""Payloads of any size and the image and encryption services, end to end on a real emulator:
a multi-megabyte output whole through S3, requests offloaded by the real SQS extended client
(and by `lab submit`), an oversize request answered at its callback."""

from __future__ import annotations

import hashlib
import subprocess
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
from lxml import etree
from sqs_extended_client import SQSExtendedClientSession  # type: ignore[import-untyped]
from support import wait_until

from lab.client.results import from_queue, parse_response
from lab.client.submit import Auth, JobSpec, render_xml, send_any_size
from lab.runtime.resources import LAB_CREDENTIALS

if TYPE_CHECKING:
    from conftest import Lab, Receiver, WorkerProc

pytestmark = pytest.mark.integration
StartWorker = Callable[..., "WorkerProc"]
BIG = 3 * 1024 * 1024  # three mebibytes of stdout
AUTH = Auth("dirk", "tellnoone")  # what the test receiver expects

CHATTY = f"""\
[services.chatty]
description = "prints {BIG} bytes"
command = ["{{service_dir}}/chatty.sh"]
input = false
timeout_seconds = 60
"""


def request(service: str, **spec: object) -> str:
    return render_xml(JobSpec(service=service, **spec)).decode()  # type: ignore[arg-type]


# Response queue URL -> the responses read from it, by their request's message id.
_READ: dict[str, dict[str, str]] = {}


def answer(lab: Lab, message_id: str, wait_s: float = 60) -> etree._Element:
    """The response to ``message_id`` from the response queue, as a parsed document. Every
    response read is kept: a worker runs several jobs at once, so responses arrive in any order,
    and one read (and deleted) while waiting for another is still found when asked for."""
    found = _READ.setdefault(lab.env.response_queue_url, {})

    def arrived() -> bool:
        reply = lab.clients.sqs.receive_message(
            QueueUrl=lab.env.response_queue_url, MaxNumberOfMessages=10, WaitTimeSeconds=1
        )
        for item in reply.get("Messages", []):
            root = etree.fromstring(item["Body"].encode())
            found[str(root.find("request").get("messageId"))] = item["Body"]  # type: ignore[union-attr]
            lab.clients.sqs.delete_message(
                QueueUrl=lab.env.response_queue_url, ReceiptHandle=item["ReceiptHandle"]
            )
        return message_id in found

    wait_until(arrived, wait_s, f"the response to {message_id}")
    return etree.fromstring(found[message_id].encode())


def s3_object(lab: Lab, url: str) -> bytes:
    bucket, key = url.removeprefix("s3://").split("/", 1)
    assert bucket == lab.env.bucket
    return lab.get_bytes(key)


def test_a_multi_megabyte_output_arrives_whole_through_s3(
    lab: Lab, start_worker: StartWorker, tmp_path: Path
) -> None:
    own = tmp_path / "services"
    own.mkdir()
    (own / "services.toml").write_text(CHATTY)
    (own / "chatty.sh").write_text(f"#!/bin/sh\nyes 0123456789abcdef | head -c {BIG}\n")
    (own / "chatty.sh").chmod(0o755)
    start_worker(lab, FLEETLAB_SERVICES_DIR=str(own))
    root = answer(lab, lab.send(request("chatty")))
    assert root.get("status") == "success", etree.tostring(root)
    [whole] = root.findall("file")
    assert whole.get("stream") == "stdout" and whole.get("bytes") == str(BIG)
    data = s3_object(lab, str(whole.get("url")))
    assert len(data) == BIG and hashlib.sha256(data).hexdigest() == whole.get("sha256")
    assert data == (b"0123456789abcdef\n" * (BIG // 17 + 1))[:BIG]
    inline = root.findtext("rawOutput") or ""
    assert inline.startswith("0123456789abcdef\n") and inline.endswith(f"at {whole.get('url')}]")
    assert len(etree.tostring(root)) < 128 * 1024  # the head only: well within SQS's limit


def test_images_and_encryption_through_the_worker(
    lab: Lab, start_worker: StartWorker, tmp_path: Path
) -> None:
    picture = tmp_path / "in.png"
    subprocess.run(["/usr/bin/convert", "-size", "640x480", "gradient:red-blue", str(picture)],
                   check=True)  # fmt: skip
    key = tmp_path / "key.txt"
    subprocess.run(["/usr/bin/age-keygen", "-o", str(key)], capture_output=True, check=True)
    recipient = key.read_text().split("public key: ", 1)[1].split()[0]
    url = lab.put_bytes("inputs/in.png", picture.read_bytes())
    start_worker(lab)
    thumb = lab.send(request("image-thumbnail", input_url=url,
                             params=[("width", "64"), ("format", "webp")]))  # fmt: skip
    sealed = lab.send(request("encrypt", input_url=url, params=[("recipient", recipient)]))
    hostile = lab.put_bytes(
        "inputs/evil.svg",
        b'<svg xmlns="http://www.w3.org/2000/svg" xmlns:xlink="http://www.w3.org/1999/xlink">'
        b'<image xlink:href="text:/etc/passwd" width="9" height="9"/></svg>',
    )
    refused = lab.send(request("image-thumbnail", input_url=hostile))

    [webp] = answer(lab, thumb).findall("file")
    out = tmp_path / "thumb.webp"
    out.write_bytes(s3_object(lab, str(webp.get("url"))))
    size = subprocess.run(["/usr/bin/identify", "-format", "%m %w %h", str(out)],
                          capture_output=True, text=True, check=True).stdout  # fmt: skip
    assert size == "WEBP 64 48"

    [age] = answer(lab, sealed).findall("file")
    ciphertext = tmp_path / "result.age"
    ciphertext.write_bytes(s3_object(lab, str(age.get("url"))))
    plain = subprocess.run(["/usr/bin/age", "-d", "-i", str(key), str(ciphertext)],
                           capture_output=True, check=True).stdout  # fmt: skip
    assert plain == picture.read_bytes()

    root = answer(lab, refused)
    assert root.get("status") == "error" and root.find("file") is None
    assert root.find("message").get("code") == "BINARY_FAILED"  # type: ignore[union-attr]


def extended_sqs(lab: Lab) -> object:
    """An SQS client of the real extended client library, storing every body in S3."""
    session = SQSExtendedClientSession(
        aws_access_key_id=LAB_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=LAB_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        region_name=lab.env.region,
    )
    sqs = session.client("sqs", endpoint_url=lab.env.endpoint_url)
    sqs.s3_client = lab.clients.s3  # the library makes its own for AWS; ours talks to the emulator
    sqs.large_payload_support = lab.env.bucket
    sqs.always_through_s3 = True
    return sqs


def test_a_request_offloaded_by_the_extended_client_is_answered_and_its_body_deleted(
    lab: Lab, start_worker: StartWorker
) -> None:
    sqs = extended_sqs(lab)
    body = request("noop", request_id="offloaded-1")
    sent = sqs.send_message(QueueUrl=lab.env.request_queue_url, MessageBody=body)  # type: ignore[attr-defined]
    [key] = [o["Key"] for o in lab.clients.s3.list_objects_v2(Bucket=lab.env.bucket)["Contents"]]
    assert lab.get_bytes(key) == body.encode()  # the library put it there, a pointer on the queue
    start_worker(lab)
    root = answer(lab, sent["MessageId"])
    assert root.get("status") == "success"
    assert root.find("request").get("requestId") == "offloaded-1"  # type: ignore[union-attr]

    def body_gone() -> bool:
        listed = lab.clients.s3.list_objects_v2(Bucket=lab.env.bucket, Prefix=key)
        return listed.get("KeyCount", 0) == 0

    wait_until(body_gone, 20, "the offloaded body deleted once the message was")


def test_offloaded_requests_from_another_bucket_or_over_the_limit_are_refused(
    lab: Lab, receiver: Receiver, start_worker: StartWorker
) -> None:
    other = f"not-the-fleets-{uuid.uuid4().hex[:8]}"
    lab.clients.s3.create_bucket(Bucket=other)
    sqs = extended_sqs(lab)
    sqs.large_payload_support = other  # type: ignore[attr-defined]
    elsewhere = sqs.send_message(  # type: ignore[attr-defined]
        QueueUrl=lab.env.request_queue_url, MessageBody=request("noop")
    )["MessageId"]
    sqs.large_payload_support = lab.env.bucket  # type: ignore[attr-defined]
    callback = f"{receiver.url}/callback"
    big = request("noop", response="callback", callback_url=callback, callback_auth=AUTH,
                  request_id="too-big")  # fmt: skip
    big = big.replace("</request>", "<!--" + "x" * 40_000 + "--></request>")
    too_big = sqs.send_message(QueueUrl=lab.env.request_queue_url, MessageBody=big)["MessageId"]  # type: ignore[attr-defined]
    start_worker(lab, FLEETLAB_MAX_OFFLOADED_REQUEST_BYTES="32768")

    refused = answer(lab, elsewhere)
    assert refused.find("message").get("code") == "URL_REJECTED"  # type: ignore[union-attr]
    [called] = wait_until(receiver.callbacks, 30, "the oversize request's callback")
    assert called["message_id"] == too_big
    got = parse_response(str(called["body"]), "callback")
    assert (got.code, got.request_id) == ("REQUEST_TOO_LARGE", "too-big")


def test_an_oversize_inline_request_is_answered_at_its_callback(
    lab: Lab, receiver: Receiver, start_worker: StartWorker
) -> None:
    callback = f"{receiver.url}/callback"
    big = request("noop", response="callback", callback_url=callback, callback_auth=AUTH,
                  request_id="big-inline")  # fmt: skip
    big = big.replace("</request>", "<!--" + "x" * 20_000 + "--></request>")
    broken = "<request" + "x" * 20_000  # too broken to name a callback: the queue answers
    start_worker(lab)
    named, unnamed = lab.send(big), lab.send(broken)
    [called] = wait_until(receiver.callbacks, 30, "the oversize request's callback")
    assert called["message_id"] == named
    assert parse_response(str(called["body"]), "callback").code == "REQUEST_TOO_LARGE"
    on_queue = answer(lab, unnamed)
    assert on_queue.find("message").get("code") == "REQUEST_TOO_LARGE"  # type: ignore[union-attr]


def test_lab_submit_offloads_a_request_over_the_queues_limit(
    lab: Lab, start_worker: StartWorker
) -> None:
    url = lab.env.request_queue_url
    lab.clients.sqs.set_queue_attributes(QueueUrl=url, Attributes={"MaximumMessageSize": "1024"})
    long_id = "r" * 128
    body = render_xml(JobSpec(service="noop", request_id=long_id))
    body = body.replace(b"<output", b"<!--" + b" " * 2000 + b"--><output")
    assert len(body) > 1024
    message_id = send_any_size(lab.clients.sqs, lab.clients.s3, url, lab.env.bucket, body)
    listed = lab.clients.s3.list_objects_v2(Bucket=lab.env.bucket, Prefix="requests/")
    assert listed["KeyCount"] == 1
    start_worker(lab)
    [result] = from_queue(lab.clients.sqs, lab.env.response_queue_url, wait_s=40, expect=1)
    assert (result.message_id, result.status, result.request_id) == (message_id, "success", long_id)
