"""A services folder of one's own, as a user brings it: scaffolded and checked with `lab
service`, carried by `lab up --services` into the bundle, installed by the boot script and
answered by instances on each body backend (process and Docker)."""

from __future__ import annotations

import json
import subprocess
import tarfile
import tomllib
from collections.abc import Callable
from pathlib import Path

import pytest
from support import LAB_CLI, Up, cli_env, wait_until

from lab.runtime.resources import LabEnv, clients_for

pytestmark = pytest.mark.integration


def lab(home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = cli_env(home, 1)
    return subprocess.run([LAB_CLI, *args], env=env, capture_output=True, text=True, check=False)


def test_scaffold_check_and_run_as_a_user_does(tmp_path: Path) -> None:
    home = tmp_path / "lab"
    made = lab(home, "service", "new", "wordcount", "--dir", str(tmp_path))
    assert made.returncode == 0, made.stderr
    folder = tmp_path / "wordcount"
    checked = lab(home, "service", "check", str(folder))
    assert checked.returncode == 0 and "1 service(s): wordcount" in checked.stdout
    ran = lab(home, "service", "run", "wordcount", "--services", str(folder),
              "--input", str(folder / "example-input.txt"), "--param", "mode=words")  # fmt: skip
    assert (ran.returncode, ran.stdout.strip()) == (0, "5"), ran.stderr
    refused = lab(home, "service", "run", "wordcount", "--services", str(folder),
                  "--input", str(folder / "example-input.txt"), "--param", "mode=$(id)")  # fmt: skip
    assert refused.returncode == 1 and "must be one of lines, words, bytes" in refused.stderr
    listed = lab(home, "service", "list", "--json", "--services", str(folder))
    rows = {row["name"]: row for row in json.loads(listed.stdout)["services"]}
    assert rows["wordcount"]["parameters"] == {"mode": "one of lines|words|bytes, default lines"}
    assert rows["encrypt"]["origin"] == "built-in"
    assert (rows["wordcount"]["claim"], rows["analyze"]["claim"]) == ("result", "lease")
    (folder / "services.toml").write_text(
        (folder / "services.toml").read_text().replace("services.wordcount", "services.noop")
    )
    clash = lab(home, "service", "check", str(folder))
    assert clash.returncode == 1 and "services.toml:7: service 'noop' clashes" in clash.stderr


@pytest.fixture(params=["process", "docker"])
def backend(request: pytest.FixtureRequest) -> str:
    if request.param == "docker":
        request.getfixturevalue("instance_image")
    return str(request.param)


@pytest.mark.timeout(600)  # a lab up with one instance, and its down: minutes on a busy machine
def test_own_services_are_deployed_and_answered_by_instances(
    backend: str, tmp_path: Path, unused_port: Callable[[], int]
) -> None:
    home = tmp_path / "lab"
    assert lab(home, "service", "new", "wordcount", "--dir", str(tmp_path)).returncode == 0
    folder = tmp_path / "wordcount"
    # A package the image already has: the boot script checks it and installs nothing.
    (folder / "packages.txt").write_text("# needed by run.sh\ncoreutils\n")
    env = cli_env(home, unused_port(), unused_port())
    up = Up(home, env, backend)
    started = up.lab("up", "--instances", "1", "--no-samples", "--backend", backend,
                     "--services", str(folder), timeout=400)  # fmt: skip
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        config = tomllib.loads((home / "config.toml").read_text())
        assert config["services"] == str(folder.resolve())

        [archive] = sorted((home / "bundles").glob("*.tar.gz"))
        with tarfile.open(archive) as tar:
            members = {m.name: m for m in tar.getmembers()}
            manifest = json.load(tar.extractfile("MANIFEST.json"))  # type: ignore[arg-type]
        assert members["services/run.sh"].mode == 0o755
        assert members["services/request.xml"].mode == 0o644
        assert {"services/services.toml", "services/run.sh", "services/packages.txt"} <= set(
            manifest["files"]
        )

        lab_env = LabEnv.load(home)
        clients = clients_for(lab_env)
        clients.s3.put_object(Bucket=lab_env.bucket, Key="inputs/words.txt",
                              Body=b"one two three four\n")  # fmt: skip
        url = f"s3://{lab_env.bucket}/inputs/words.txt"
        sent = up.lab("submit", "--service", "wordcount", "--input", url,
                      "--param", "mode=words", "--request-id", f"own-{backend}")  # fmt: skip
        assert sent.returncode == 0, sent.stderr
        answered: dict[str, dict[str, object]] = {}

        def collect() -> bool:
            done = up.lab("results", "--wait", "2", "--json")
            answered.update({r["message_id"]: r for r in json.loads(done.stdout or "[]")})
            return sent.stdout.strip() in answered

        wait_until(collect, 240, "the own service's answer")
        result = answered[sent.stdout.strip()]
        assert result["status"] == "success", result
        assert str(result["raw_output"]).strip() == "4"
        [instance] = up.live()
        console = (home / "instances" / instance["id"] / "console.log").read_text()
        assert "running its start.sh" in console
        assert "with apt-get" not in console  # coreutils was there: nothing for apt to do
    finally:
        down = up.lab("down", timeout=180)
        assert down.returncode == 0, down.stderr
