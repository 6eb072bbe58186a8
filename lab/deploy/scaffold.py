"""`lab service new NAME`: a services folder with a working example and a test request."""

from __future__ import annotations

from pathlib import Path

from lab.errors import LabError
from worker.handle.service_file import NAME

SERVICES_TOML = """\
# Your own services, in the registry's format (see the built-ins in worker/handle/services.toml).
# {{service_dir}} is this folder as installed on the instance; nothing passes through a shell.
# Check it with `lab service check .`, try it with
#   lab service run {name} --input example-input.txt --param mode=words
# and carry it to the fleet with `lab deploy --services .` (or `lab up --services .`).

[services.{name}]
description = "An example: counts the lines, words or bytes of its input"
command = ["{{service_dir}}/run.sh", "{{params}}", "{{input}}"]
input = true
timeout_seconds = 60
output = "stdout"
# Short, and its only effect is its output: run, then publish with one create-only write.
# "lease" (the default) claims before the run instead, so that a duplicate never runs.
claim = "result"

[services.{name}.parameters.mode]
kind = "choice"
choices = ["lines", "words", "bytes"]
default = "lines"
arg = ["--{{value}}"]
"""

RUN_SH = """\
#!/bin/bash
# The example service: run.sh --lines|--words|--bytes FILE. Any executable will do; it gets
# argv only (never a shell line), a minimal environment, and its own scratch folder as cwd.
set -euo pipefail
case "$1" in
--lines) wc -l <"$2" ;;
--words) wc -w <"$2" ;;
--bytes) wc -c <"$2" ;;
*)
  echo "unknown mode $1" >&2
  exit 2
  ;;
esac
"""

PACKAGES_TXT = """\
# Debian packages the instance installs at boot for these services, one a line (or none).
# For example:
# imagemagick
"""

REQUEST_XML = """\
<?xml version="1.0" encoding="UTF-8"?>
<!-- A test request: upload example-input.txt to the fleet's bucket under inputs/ first, e.g.
     aws s3 cp example-input.txt s3://fleetlab-local/inputs/example-input.txt -->
<request service="{name}" requestId="{name}-example-1">
  <input type="s3" url="s3://fleetlab-local/inputs/example-input.txt"/>
  <parameters><parameter name="mode" value="words"/></parameters>
  <output type="queue"/>
</request>
"""

INPUT_TXT = "one two three\nfour five\n"


def scaffold(name: str, parent: Path) -> Path:
    """Write the folder ``parent/name``; refuse a bad name or a folder that exists."""
    if not NAME.fullmatch(name):
        raise LabError(f"service name {name!r}: use a-z, 0-9, '-' and '_' (at most 64)")
    folder = parent / name
    if folder.exists():
        raise LabError(f"{folder} exists already; choose another name or folder")
    folder.mkdir(parents=True)
    (folder / "services.toml").write_text(SERVICES_TOML.format(name=name))
    (folder / "run.sh").write_text(RUN_SH)
    (folder / "run.sh").chmod(0o755)
    (folder / "packages.txt").write_text(PACKAGES_TXT)
    (folder / "request.xml").write_text(REQUEST_XML.format(name=name))
    (folder / "example-input.txt").write_text(INPUT_TXT)
    return folder
