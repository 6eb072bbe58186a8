"""The lab's proxy in AWS-latency mode as its own process (``python -m lab.net.serve``) in
front of the real emulator: boto3 calls through it succeed, and it counts each by operation."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import Lab, stop_process
from support import clean_env, wait_until

from lab.errors import StartFailed
from lab.net.serve import read_counts
from lab.runtime import procs, stack
from lab.runtime.emulator import answers
from lab.runtime.procs import free_port
from lab.runtime.resources import lab_clients
from lab.runtime.settings import LabSettings
from worker.aws import Clients


@pytest.fixture
def through_proxy(lab: Lab, tmp_path: Path) -> Iterator[tuple[Clients, Path, Path]]:
    """Clients whose every call goes through an AWS-latency proxy to the test's emulator;
    the proxy's counts and trace files."""
    port, counts, trace = free_port(), tmp_path / "counts.json", tmp_path / "trace.jsonl"
    upstream = (lab.env.endpoint_url or "").rsplit(":", 1)[1]
    argv = [sys.executable, "-m", "lab.net.serve", "--route", f"aws:{port}:127.0.0.1:{upstream}",
            "--latency", "aws", "--seed", "7", "--counts", str(counts), "--trace", str(trace)]  # fmt: skip
    with (tmp_path / "proxy.log").open("wb") as log:
        proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, env=clean_env())
    try:
        wait_until(lambda: answers(f"http://127.0.0.1:{port}/"), 15, "the proxy", 0.1)
        clients = lab_clients(lab.env.region, f"http://127.0.0.1:{port}")
        yield clients, counts, trace
    finally:
        assert stop_process(proc) == 0, (tmp_path / "proxy.log").read_text()


def test_calls_through_the_aws_proxy_succeed_and_are_counted_by_operation(
    lab: Lab, through_proxy: tuple[Clients, Path, Path]
) -> None:
    clients, counts, trace = through_proxy
    sqs, s3, queue = clients.sqs, clients.s3, lab.env.request_queue_url
    sqs.send_message(QueueUrl=queue, MessageBody="one")
    sqs.send_message(QueueUrl=queue, MessageBody="two")
    got: list[dict[str, str]] = []
    while len(got) < 2:
        got += sqs.receive_message(QueueUrl=queue, MaxNumberOfMessages=10, WaitTimeSeconds=1)[
            "Messages"
        ]
    handles = [{"Id": str(i), "ReceiptHandle": m["ReceiptHandle"]} for i, m in enumerate(got)]
    sqs.change_message_visibility_batch(
        QueueUrl=queue, Entries=[h | {"VisibilityTimeout": 5} for h in handles]
    )
    assert not sqs.delete_message_batch(QueueUrl=queue, Entries=handles).get("Failed")
    sqs.get_queue_attributes(QueueUrl=queue, AttributeNames=["ApproximateNumberOfMessages"])
    s3.put_object(Bucket=lab.env.bucket, Key="claims/a.json", Body=b"{}", IfNoneMatch="*")
    with pytest.raises(s3.exceptions.ClientError):  # taken: the conditional write is refused
        s3.put_object(Bucket=lab.env.bucket, Key="claims/a.json", Body=b"{}", IfNoneMatch="*")
    assert s3.get_object(Bucket=lab.env.bucket, Key="claims/a.json")["Body"].read() == b"{}"
    s3.head_object(Bucket=lab.env.bucket, Key="claims/a.json")
    listed = s3.list_objects_v2(Bucket=lab.env.bucket, Prefix="claims/")
    assert [o["Key"] for o in listed["Contents"]] == ["claims/a.json"]
    clients.logs.create_log_stream(logGroupName=lab.env.log_group, logStreamName="w1")
    clients.logs.put_log_events(
        logGroupName=lab.env.log_group,
        logStreamName="w1",
        logEvents=[{"timestamp": int(time.time() * 1000), "message": "hello"}],
    )
    assert lab.log_events() == ["hello"]  # the lab's own client: straight to the emulator

    def counted() -> dict[str, int]:
        return read_counts(counts).get("aws", {})

    expected = {
        "sqs.SendMessage": 2,
        "sqs.ChangeMessageVisibilityBatch": 1,
        "sqs.DeleteMessageBatch": 1,
        "sqs.GetQueueAttributes": 1,
        "s3.PutObject": 2,
        "s3.GetObject": 1,
        "s3.HeadObject": 1,
        "s3.ListObjectsV2": 1,
        "logs.CreateLogStream": 1,
        "logs.PutLogEvents": 1,
    }
    wait_until(lambda: all(counted().get(k) == v for k, v in expected.items()), 10, "counts")
    calls = counted()
    assert calls.pop("sqs.ReceiveMessage") >= 1
    assert calls.pop("unknown.unknown") == 1  # the fixture's unsigned readiness probe
    assert calls == expected  # nothing unknown, nothing counted twice
    traced = [json.loads(line) for line in trace.read_text().splitlines()]
    assert len(traced) == sum(counted().values())  # one trace line per call
    assert all(line["delay_ms"] > 0 for line in traced)  # the AWS model held every call


def test_the_lab_refuses_a_proxy_port_already_taken(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        settings = LabSettings(home=tmp_path, latency="aws", proxy_port=taken.getsockname()[1])
        with pytest.raises(StartFailed, match="already listens"):
            stack.start_proxy(settings, clean_env())
    assert not procs.running(settings.pids)
