"""What the lab's emulators do as AWS does only because the lab patches it in
(``lab.runtime.fidelity``): on the session's real emulator, over HTTP."""

from __future__ import annotations

import uuid

import pytest
from botocore.exceptions import BotoCoreError, ClientError
from conftest import Emulator, Lab

from lab.ec2 import instances
from lab.net.proxy import Fault, Proxy, Route
from lab.runtime.resources import lab_clients
from worker.scaler import ec2

pytestmark = pytest.mark.integration


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
    lab: Lab, emulator: Emulator
) -> None:
    """The scaler's own client and launch call, through the lab's proxy resetting a fifth of
    the chunks each way: the SDK retries a launch whose answer was lost after the emulator
    acted, and a cut answer is an error like any other (not a parse error past every handler).
    Each launch is sent, with its token, until it is answered."""
    fleet = new_fleet(lab)
    proxy = Proxy([Route("emulator", "127.0.0.1", emulator.port)], seed=7).start()
    proxy.set("emulator", Fault(reset_p=0.2))
    flaky = lab_clients(lab.env.region, proxy.url("emulator"))
    answered: dict[str, list[str]] = {}
    try:
        for tick in range(12):
            token = f"{fleet}-tick-{tick}"
            for _ in range(20):
                try:
                    answered[token] = ec2.launch(flaky.ec2, fleet, 1, token)
                    break
                except (BotoCoreError, ClientError):
                    continue
    finally:
        proxy.stop()
    assert len(answered) == 12, f"launches never answered through the proxy: {12 - len(answered)}"
    live = [i.id for i in ec2.fleet(lab.clients.ec2, fleet)]
    assert sorted(live) == sorted(i for ids in answered.values() for i in ids)
