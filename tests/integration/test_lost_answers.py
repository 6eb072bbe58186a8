"""Calls whose answer a reset connection lost, on the session's real emulator over HTTP (through
the lab's proxy): the SDK sends them again, and a retry of a call that had acted must not act
twice nor be mistaken for someone else's. Launches start once (a client token, which the lab's
``fidelity`` patch makes the emulators honour as EC2 does); a conditional write meets its own
write and counts it as its own; an answer cut short is an error like any other."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable, Iterator
from functools import partial
from typing import TypeVar

import pytest
from botocore.exceptions import BotoCoreError, ClientError
from conftest import Emulator, Lab

from lab.ec2 import instances
from lab.net.proxy import Fault, Proxy, Route
from lab.runtime.resources import lab_clients
from worker.errors import StoreError
from worker.scaler import ec2
from worker.state.claims import Acquired, Claims
from worker.state.store import S3JsonStore

pytestmark = pytest.mark.integration

T = TypeVar("T")


@pytest.fixture
def resetting(emulator: Emulator) -> Iterator[str]:
    """The emulator's URL through the lab's proxy, resetting a fifth of the chunks each way."""
    proxy = Proxy([Route("emulator", "127.0.0.1", emulator.port)], seed=7).start()
    proxy.set("emulator", Fault(reset_p=0.2))
    yield proxy.url("emulator")
    proxy.stop()


def until_answered(call: Callable[[], T], tries: int = 100) -> T:
    """``call`` again (the same arguments) until it is answered; what the SDK's own retries
    do, past their limit (and past their quota, which a run of resets soon spends: an S3 write
    of a dozen chunks each way gets through about one time in ten)."""
    for _ in range(tries - 1):
        try:
            return call()
        except (BotoCoreError, ClientError, StoreError):
            continue
    return call()


def new_fleet(lab: Lab) -> str:
    """A fleet with a launch template of its own."""
    fleet = f"fid-{uuid.uuid4().hex[:8]}"
    data = instances.fleet_template(fleet, instances.lab_template_data(), "#!/bin/sh\n")
    instances.put_template(lab.clients.ec2, fleet, data)
    return fleet


def test_a_launch_repeated_with_its_client_token_returns_the_same_instances(lab: Lab) -> None:
    fleet = new_fleet(lab)
    first = ec2.launch(lab.clients.ec2, fleet, 2, f"{fleet}-1")
    assert len(first) == 2
    assert ec2.launch(lab.clients.ec2, fleet, 2, f"{fleet}-1") == first
    assert len(ec2.launch(lab.clients.ec2, fleet, 1, f"{fleet}-2")) == 1
    # Without a token every request is a new one, as on EC2.
    assert ec2.launch(lab.clients.ec2, fleet, 1) != ec2.launch(lab.clients.ec2, fleet, 1)
    assert len(ec2.fleet(lab.clients.ec2, fleet)) == 5


def test_launches_through_a_network_that_resets_start_each_instance_once(
    lab: Lab, resetting: str
) -> None:
    """The scaler's own client and launch call; each launch sent, with its token, until it is
    answered. A cut answer is an error like any other (not a parse error past every handler)."""
    fleet = new_fleet(lab)
    flaky = lab_clients(lab.env.region, resetting)
    answered = {
        tick: until_answered(lambda tick=tick: ec2.launch(flaky.ec2, fleet, 1, f"{fleet}-{tick}"))
        for tick in range(12)
    }
    live = [i.id for i in ec2.fleet(lab.clients.ec2, fleet)]
    assert sorted(live) == sorted(i for ids in answered.values() for i in ids)


def test_claims_written_through_a_network_that_resets_are_never_lost_to_themselves(
    lab: Lab, resetting: str
) -> None:
    """A worker's claim, renewed and finished through resets: never busy with, taken over by or
    fenced from itself, and the finished response is the one it wrote."""
    flaky = lab_clients(lab.env.region, resetting)
    claims = Claims(S3JsonStore(flaky.s3, lab.env.bucket), "w1")
    now = time.time()
    for n in range(10):
        key = f"{uuid.uuid4().hex}-{n}"
        got = until_answered(partial(claims.acquire, key, f"m{n}", now, 30))
        assert isinstance(got, Acquired) and not got.takeover
        renewed = until_answered(partial(claims.renew, got.claim, now + 5, 30))
        until_answered(partial(claims.finish, renewed, f"<r{n}/>"))
        assert until_answered(partial(claims.publish, f"{key}-r", f"m{n}", "<x/>", now)).ours
    stored = Claims(S3JsonStore(lab.clients.s3, lab.env.bucket), "w2")
    assert stored.lookup(key) is not None and stored.lookup(key).response == "<r9/>"  # type: ignore[union-attr]
