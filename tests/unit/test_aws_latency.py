"""The AWS latency model (seeded draws whose percentiles match the data file's p50 and p99),
and how the proxy frames and names requests, on request bytes as boto3 1.44 sends them."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from lab.net import http_frames
from lab.net.http_frames import FramingError, parse_head, recognise
from lab.net.latency import Call, LatencyError, Spread, load, model_for

_UA = b"User-Agent: Boto3/1.44.8 md/Botocore#1.44.8 ua/2.1 os/linux md/arch#x86_64\r\n"
SQS_SEND = (
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1:37139\r\nAccept-Encoding: identity\r\n"
    b"X-Amz-Target: AmazonSQS.SendMessage\r\nContent-Type: application/x-amz-json-1.0\r\n"
    b"x-amzn-query-mode: true\r\n" + _UA + b"X-Amz-Date: 20261130T014804Z\r\n"
    b"Authorization: AWS4-HMAC-SHA256 Credential=test/20261130/us-east-1/sqs/aws4_request, "
    b"SignedHeaders=content-type;host;x-amz-date;x-amz-target;x-amzn-query-mode, "
    b"Signature=9316edf67addf87d76e8a1b257ef38143cbe25e3186a341c14a59e6fcc66846b\r\n"
    b"amz-sdk-invocation-id: 294b76fd-d99a-4c48-9294-42992ecafec9\r\n"
    b"amz-sdk-request: attempt=1; max=2\r\nContent-Length: 74\r\n\r\n"
    b'{"QueueUrl": "http://127.0.0.1:37139/000000000000/q", "MessageBody": "hi"}'
)
LOGS_PUT = (
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1:37139\r\nAccept-Encoding: identity\r\n"
    b"X-Amz-Target: Logs_20140328.PutLogEvents\r\nContent-Type: application/x-amz-json-1.1\r\n"
    + _UA
    + b"X-Amz-Date: 20261130T014805Z\r\n"
    b"Authorization: AWS4-HMAC-SHA256 Credential=test/20261130/us-east-1/logs/aws4_request, "
    b"SignedHeaders=content-type;host;x-amz-date;x-amz-target, Signature=25185dfd\r\n"
    b"Content-Length: 92\r\n\r\n"
    b'{"logGroupName": "g", "logStreamName": "s", "logEvents": [{"timestamp": 1, "message": "m"}]}'
)
S3_CLAIM = (  # PutObject with IfNoneMatch="*": a 100-continue head, the body after it
    b"PUT /b/claims/k.json HTTP/1.1\r\nHost: 127.0.0.1:37139\r\nAccept-Encoding: identity\r\n"
    b"If-None-Match: *\r\n" + _UA + b"Expect: 100-continue\r\n"
    b"x-amz-checksum-crc32: o6a/Qw==\r\nx-amz-sdk-checksum-algorithm: CRC32\r\n"
    b"X-Amz-Date: 20261130T014806Z\r\n"
    b"X-Amz-Content-SHA256: 44136fa355b3678a1146ad16f7e8649e94fb4fc21fe77e8310c060f61caaff8a\r\n"
    b"Authorization: AWS4-HMAC-SHA256 Credential=test/20261130/us-east-1/s3/aws4_request, "
    b"SignedHeaders=host;if-none-match;x-amz-checksum-crc32;x-amz-content-sha256;x-amz-date;"
    b"x-amz-sdk-checksum-algorithm, Signature=75b88b2d\r\nContent-Length: 2\r\n\r\n{}"
)
_S3_AUTH = (
    b"X-Amz-Content-SHA256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855\r\n"
    b"Authorization: AWS4-HMAC-SHA256 Credential=test/20261130/us-east-1/s3/aws4_request, "
    b"SignedHeaders=host;x-amz-content-sha256;x-amz-date, Signature=a6b3d919\r\n\r\n"
)
S3_GET = b"GET /b/a/b%20c.json HTTP/1.1\r\nHost: h\r\nx-amz-checksum-mode: ENABLED\r\n" + _S3_AUTH
S3_LIST = b"GET /b?list-type=2&prefix=x%2F&encoding-type=url HTTP/1.1\r\nHost: h\r\n" + _S3_AUTH
S3_HEAD = b"HEAD /b/k HTTP/1.1\r\nHost: h\r\n" + _S3_AUTH
EC2_DESCRIBE = (
    b"POST / HTTP/1.1\r\nHost: 127.0.0.1:37139\r\nAccept-Encoding: identity\r\n"
    b"Content-Type: application/x-www-form-urlencoded; charset=utf-8\r\n" + _UA
    + b"X-Amz-Date: 20261130T014810Z\r\n"
    b"Authorization: AWS4-HMAC-SHA256 Credential=test/20261130/us-east-1/ec2/aws4_request, "
    b"SignedHeaders=content-type;host;x-amz-date, Signature=198f2d10\r\n"
    b"Content-Length: 43\r\n\r\nAction=DescribeInstances&Version=2016-11-15"
)  # fmt: skip


def head_and_body(raw: bytes) -> tuple[http_frames.RequestHead, bytes]:
    head, _, body = raw.partition(b"\r\n\r\n")
    return parse_head(head + b"\r\n\r\n"), body


# --- the model --------------------------------------------------------------------------------


def test_draws_are_seeded_per_call_and_index() -> None:
    model, other = load(seed=3), load(seed=4)
    send = Call("sqs", "SendMessage")
    assert model.draw_ms(send, 5) == load(seed=3).draw_ms(send, 5)
    assert model.draw_ms(send, 5) != model.draw_ms(send, 6)
    assert model.draw_ms(send, 5) != other.draw_ms(send, 5)


@pytest.mark.parametrize(("service", "operation"), [("sqs", "SendMessage"), ("s3", "PutObject")])
def test_percentiles_of_many_draws_match_the_data_file(service: str, operation: str) -> None:
    model = load(seed=1)
    call = Call(service, operation)
    spread = model.spread(call)
    draws = sorted(model.draw_ms(call, i) for i in range(20_000))
    assert draws[10_000] == pytest.approx(spread.p50_ms, rel=0.05)
    assert draws[19_800] == pytest.approx(spread.p99_ms, rel=0.15)
    assert spread.quantile(0.99) == pytest.approx(spread.p99_ms)


def test_unnamed_calls_fall_back_to_their_service_then_the_default() -> None:
    model = load()
    assert model.spread(Call("s3", "CopyObject")) == model.spreads["s3"]["default"]
    assert model.spread(Call("unknown", "unknown")) == model.fallback
    assert (
        model.spread(Call("sqs", "ReceiveMessage")).p50_ms
        < model.spread(Call("ec2", "RunInstances")).p50_ms
    )


def test_draws_are_capped() -> None:
    spread = Spread(10.0, 50.0)
    rng = random.Random(0)
    assert max(spread.draw(rng) for _ in range(100_000)) <= 250.0


def test_bad_modes_and_data_files_get_clear_errors(tmp_path: Path) -> None:
    assert model_for("none") is None
    with pytest.raises(LatencyError, match="unknown latency mode"):
        model_for("gcp")
    bad = tmp_path / "bad.toml"
    for text, says in [
        ("[default]\np50_ms = 30\n", "exactly p50_ms and p99_ms"),
        ("[default]\np50_ms = 30\np99_ms = 10\n", "p50 <= p99"),
        ('[default]\np50_ms = 1\np99_ms = 2\n[sqs]\nX = { p50_ms = "a", p99_ms = 2 }\n', "numbers"),
        ("[default\n", "cannot read"),
    ]:
        bad.write_text(text)
        with pytest.raises(LatencyError, match=says):
            load(bad)


# --- recognising calls ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (SQS_SEND, Call("sqs", "SendMessage")),
        (LOGS_PUT, Call("logs", "PutLogEvents")),
        (S3_CLAIM, Call("s3", "PutObject")),
        (S3_GET, Call("s3", "GetObject")),
        (S3_LIST, Call("s3", "ListObjectsV2")),
        (S3_HEAD, Call("s3", "HeadObject")),
        (EC2_DESCRIBE, Call("ec2", "DescribeInstances")),
    ],
)
def test_recognises_boto3_requests(raw: bytes, expected: Call) -> None:
    head, body = head_and_body(raw)
    assert recognise(head, body if head.is_form else None) == expected


def test_recognises_query_protocol_in_the_url_and_unsigned_requests() -> None:
    head = parse_head(
        b"GET /123/q?Action=ReceiveMessage&MaxNumberOfMessages=10 HTTP/1.1\r\n"
        b"Authorization: AWS4-HMAC-SHA256 Credential=k/20261130/us-east-1/sqs/aws4_request, "
        b"SignedHeaders=host, Signature=ab\r\n\r\n"
    )
    assert recognise(head) == Call("sqs", "ReceiveMessage")
    assert recognise(parse_head(b"GET /moto-api/ HTTP/1.1\r\nHost: h\r\n\r\n")) == Call(
        "unknown", "unknown"
    )


@pytest.mark.parametrize(
    "raw",
    [b"\x16\x03\x01\x02\x00\r\n\r\n", b"GET /\r\n\r\n", b"GET / HTTP/1.1\r\nno colon\r\n\r\n"],
)
def test_what_is_not_an_http_request_is_refused(raw: bytes) -> None:
    with pytest.raises(FramingError):
        parse_head(raw)


# --- framing a keep-alive stream --------------------------------------------------------------


class Collected:
    def __init__(self) -> None:
        self.data = b""

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        pass


CHUNKED = (
    b"PUT /b/big HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n"
    b"5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nx-amz-checksum-crc32: AAAA\r\n\r\n"
)


def frames(stream: bytes) -> list[bytes]:
    """Split ``stream`` into requests as the proxy does."""

    async def split() -> list[bytes]:
        reader = asyncio.StreamReader()
        reader.feed_data(stream)
        reader.feed_eof()
        found = []
        while raw := await http_frames.read_head(reader):
            head = parse_head(raw)
            sink = Collected()
            if head.is_form:
                sink.write(await http_frames.read_form(head, reader))
            else:
                await http_frames.copy_body(head, reader, sink)
            found.append(raw + sink.data)
        return found

    return asyncio.run(split())


def test_a_keep_alive_stream_splits_into_its_requests() -> None:
    requests = [SQS_SEND, S3_CLAIM, CHUNKED, S3_GET, EC2_DESCRIBE, LOGS_PUT]
    assert frames(b"".join(requests)) == requests


def test_a_bad_chunk_size_is_a_framing_error() -> None:
    with pytest.raises(FramingError, match="chunk size"):
        frames(b"PUT /b/k HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n")
    with pytest.raises(FramingError, match="Content-Length"):
        _ = parse_head(b"PUT /b/k HTTP/1.1\r\nContent-Length: -1\r\n\r\n").content_length
