"""`lab provision` and `lab teardown`: the fleet's resources on AWS (environment ``aws``)."""

from __future__ import annotations

from typing import Annotated

import typer

from lab.cli import progress
from lab.cli.common import errors_to_exit, settings
from lab.cloud import prices
from lab.cloud import provision as making
from lab.cloud import teardown as unmaking
from lab.cloud.plan import Step, summary
from lab.cloud.target import DEBIAN_12, Options, caller_account, connect
from lab.errors import LabError, NotRunning
from lab.runtime.resources import LabEnv, lab_clients
from lab.runtime.settings import LabSettings


def _aws_settings() -> LabSettings:
    config = settings()
    if config.env != "aws":
        raise LabError(
            f"the environment is {config.env!r}: provision and teardown are for AWS "
            "(`lab env use aws`); the emulators are brought up with `lab up`"
        )
    return config


def _print(step: Step) -> None:
    typer.echo(step.line())


def provision(
    dry_run: Annotated[bool, typer.Option(help="Print the plan; change nothing.")] = False,
    instance_type: Annotated[str, typer.Option(help="EC2 instance type.")] = "c7i.large",
    min_instances: Annotated[
        int, typer.Option("--min", min=0, help="Instances always running (0: scale to zero).")
    ] = 1,
    max_instances: Annotated[int, typer.Option("--max", min=1, help="Most instances.")] = 4,
    image_id: Annotated[
        str | None, typer.Option(help="AMI to boot (default: from --image-parameter).")
    ] = None,
    image_parameter: Annotated[
        str, typer.Option(help="Public SSM parameter naming the current image.")
    ] = DEBIAN_12,
    bucket: Annotated[
        str | None, typer.Option(help="Bucket name (default fleetlab-aws-ACCOUNT-REGION).")
    ] = None,
    log_retention_days: Annotated[int, typer.Option(help="Days the activity log is kept.")] = 30,
    spot_fraction: Annotated[
        float,
        typer.Option(min=0, max=1, help="Share of the fleet the scaler launches as spot."),
    ] = 0.0,
) -> None:
    """Create (idempotently) what the fleet needs on AWS, tagged fleetlab:fleet=aws: queues
    with a dead-letter queue, bucket, log group, role and profile, security group, launch
    template, a code bundle and the initial capacity."""
    with errors_to_exit():
        if max_instances < min_instances:
            raise LabError("--max must be at least --min")
        options = Options(
            instance_type=instance_type,
            min_instances=min_instances,
            max_instances=max_instances,
            image_id=image_id,
            image_parameter=image_parameter,
            bucket=bucket,
            log_retention_days=log_retention_days,
            spot_fraction=spot_fraction,
        )
        typer.echo(prices.statement(instance_type, min_instances))
        if spot_fraction:
            typer.echo(
                f"spot: the scaler launches {100 * spot_fraction:g} % of the fleet as spot "
                "(above an on-demand base; on-demand alone after repeated interruptions)"
            )
        # The share goes into the scaler's settings (scaler/config.json), not the user-data:
        # a later `lab deploy` rewrites the user-data and would drop it.
        target = connect(_aws_settings(), options)
        typer.echo(
            f"account {target.names.account}, region {target.names.region}, image {target.image_id}"
        )
        if dry_run:
            steps = making.dry_run(target)
            for step in steps:
                _print(step)
            typer.echo(f"plan: {summary(steps)} (dry run: nothing changed)")
            return
        with progress.working("provisioning", plain=typer.echo) as say:
            steps = making.provision(target, lambda step: say(step.line()))
        typer.echo(f"provisioned: {summary(steps)}; `lab env show` names them")


def teardown(
    yes: Annotated[bool, typer.Option("--yes", help="Really remove them.")] = False,
) -> None:
    """Remove what `lab provision` made (found by its tag), and nothing else; say what."""
    with errors_to_exit():
        config = _aws_settings()
        clients = lab_clients(config.region, config.aws_endpoint_url, emulated=False)
        caller_account(clients)  # a clear error without credentials
        try:
            saved: LabEnv | None = LabEnv.load(config.home)
        except NotRunning:
            saved = None
        found = unmaking.survey(clients, config.env, saved.bucket if saved else None)
        if not yes:
            for item in found:
                typer.echo(item.line("would remove"))
            typer.echo("nothing removed: run `lab teardown --yes` to remove what is tagged")
            raise typer.Exit(1)
        for item in found:
            if not item.ours:
                typer.echo(item.line(""))
        with progress.working("teardown", plain=typer.echo) as say:
            unmaking.remove(clients, config.env, found, say)
        if saved is not None and saved.env == config.env:
            (config.home / "env.json").unlink(missing_ok=True)
        removed = sum(1 for f in found if f.ours)
        typer.echo(
            f"teardown: removed {removed} resource(s)"
            if removed
            else "teardown: nothing of the fleet's was found"
        )


def register(app: typer.Typer) -> None:
    """Add these commands to the `lab` app."""
    app.command()(provision)
    app.command()(teardown)
