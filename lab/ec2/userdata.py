"""An instance's user-data: ``worker/boot/user-data.sh`` with its configuration in front of it.

The configuration is a header of ``export NAME=value`` lines, each value shell-quoted, so that a
hostile value stays one literal string. Credentials never go in: user-data is readable by anyone
who may describe the instance; they come from the body's environment or the instance role.
"""

from __future__ import annotations

import re
import shlex
from collections.abc import Mapping

from lab.errors import LabError
from worker import boot

MAX_BYTES = 16 * 1024  # EC2's limit on user-data, before base64
SECRETS = frozenset({"AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")


def header(config: Mapping[str, str]) -> str:
    """The ``export NAME=value`` lines for ``config``, in its order."""
    lines = []
    for name, value in config.items():
        if not _NAME.fullmatch(name):
            raise LabError(f"user-data: {name!r} is not a shell variable name")
        if name in SECRETS:
            raise LabError(f"user-data: {name} is a credential and must not be in user-data")
        if "\0" in value:
            raise LabError(f"user-data: the value of {name} contains a NUL byte")
        lines.append(f"export {name}={shlex.quote(value)}\n")
    return "".join(lines)


def render(config: Mapping[str, str]) -> str:
    """The complete user-data: a shebang, the configuration header, then the boot script."""
    script = boot.script()
    if script.startswith("#!"):
        script = script.split("\n", 1)[1]
    text = (
        "#!/bin/bash\n"
        "# fleetlab instance user-data: configuration (lab/ec2/userdata.py), then the boot"
        " script.\n" + header(config) + script
    )
    if len(text.encode()) > MAX_BYTES:
        raise LabError(f"user-data is {len(text.encode())} bytes; EC2 allows {MAX_BYTES}")
    return text
