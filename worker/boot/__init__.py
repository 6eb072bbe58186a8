"""The instance's boot scripts, shipped as package data: ``user-data.sh`` is the EC2 user-data."""

from __future__ import annotations

from importlib import resources

USER_DATA = "user-data.sh"


def script(name: str = USER_DATA) -> str:
    """The text of one boot script (``lab.ec2.userdata.render`` puts its configuration in front)."""
    return resources.files(__name__).joinpath(name).read_text("utf-8")
