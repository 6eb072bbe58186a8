"""An answer cut short is a failed call (``worker.aws.refuse_cut_short``), not a parse error
past every handler nor an empty answer taken for a real one."""

from __future__ import annotations

import io
from typing import Any

import boto3
import pytest
from botocore.exceptions import BotoCoreError, IncompleteReadError
from botocore.model import OperationModel

from worker.aws import refuse_cut_short

XML = b"<DescribeInstancesResponse><reservationSet/></DescribeInstancesResponse>"


def operation(service: str, name: str) -> OperationModel:
    client = boto3.client(service, region_name="us-east-1", aws_access_key_id="k",
                          aws_secret_access_key="s")  # fmt: skip
    return client.meta.service_model.operation_model(name)


def answer(body: Any, length: int | None) -> dict[str, Any]:
    headers = {} if length is None else {"content-length": str(length)}
    return {"status_code": 200, "headers": headers, "body": body}


def test_a_body_shorter_than_its_length_is_a_failed_call() -> None:
    describe = operation("ec2", "DescribeInstances")
    with pytest.raises(IncompleteReadError) as cut:
        refuse_cut_short(describe, answer(XML[:20], len(XML)))
    assert isinstance(cut.value, BotoCoreError)
    with pytest.raises(IncompleteReadError):  # a JSON answer cut to nothing would parse as {}
        refuse_cut_short(operation("sqs", "SendMessage"), answer(b"", 120))


def test_whole_answers_and_those_it_cannot_judge_pass() -> None:
    describe = operation("ec2", "DescribeInstances")
    refuse_cut_short(describe, answer(XML, len(XML)))
    refuse_cut_short(describe, answer(XML, None))  # no length declared: nothing to hold it to
    # A HEAD's Content-Length is the object's, its body empty.
    refuse_cut_short(operation("s3", "HeadObject"), answer(b"", 5000))
    # A stream (GetObject's body) is checked by botocore as it is read.
    refuse_cut_short(operation("s3", "GetObject"), answer(io.BytesIO(b"x"), 5000))
