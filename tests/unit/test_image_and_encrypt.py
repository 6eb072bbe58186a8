"""The built-in image-thumbnail (ImageMagick) and encrypt (age) services, run for real through
the worker's parameter filter and executor; hostile images refused by the shipped policy."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from lab.client.local_run import run_here
from worker.errors import ParameterRejected
from worker.handle.ending import Failed, Succeeded
from worker.handle.recipients import is_age_recipient
from worker.handle.service_file import load_registry

REGISTRY = load_registry()
CONVERT = "/usr/bin/convert"  # the Debian path the service uses (a stand-in may shadow PATH's)


def picture(tmp_path: Path, size: str = "800x600") -> Path:
    path = tmp_path / "in.png"
    subprocess.run([CONVERT, "-size", size, "gradient:red-blue", str(path)], check=True)
    return path


def identify(path: Path) -> tuple[str, int, int]:
    done = subprocess.run(
        ["/usr/bin/identify", "-format", "%m %w %h", str(path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    kind, width, height = done.stdout.split()
    return kind, int(width), int(height)


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ([], ("PNG", 256, 192)),  # the defaults: within 256 x 256, as PNG
        ([("width", "100"), ("format", "jpeg"), ("quality", "40")], ("JPEG", 100, 75)),
        ([("height", "60"), ("format", "webp")], ("WEBP", 80, 60)),
        ([("width", "4000"), ("height", "4000")], ("PNG", 800, 600)),  # never enlarged
    ],
)
def test_thumbnails_fit_the_bounds_in_the_format_asked(
    tmp_path: Path, params: list[tuple[str, str]], expected: tuple[str, int, int]
) -> None:
    done = run_here(REGISTRY, "image-thumbnail", picture(tmp_path), params, tmp_path / "out")
    assert isinstance(done.verdict, Succeeded), done.stderr
    assert done.result is not None
    assert done.result.suffix == "." + dict(params).get("format", "png")
    assert identify(done.result) == expected


@pytest.mark.parametrize(
    "params",
    [[("width", "0")], [("format", "pdf")], [("format", "../x")], [("quality", "101")]],
)
def test_thumbnail_parameters_are_filtered(tmp_path: Path, params: list[tuple[str, str]]) -> None:
    with pytest.raises(ParameterRejected):
        run_here(REGISTRY, "image-thumbnail", picture(tmp_path), params, tmp_path)


HOSTILE = {
    # An SVG whose image is a local file read through the text: coder, and a URL fetch.
    "evil.svg": '<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg" '
    'xmlns:xlink="http://www.w3.org/1999/xlink" width="10" height="10">'
    '<image xlink:href="text:/etc/passwd" width="10" height="10"/>'
    '<image xlink:href="url:http://127.0.0.1:9/x.png" width="10" height="10"/></svg>',
    # An MSL script that reads a file and writes another.
    "evil.msl": '<?xml version="1.0"?><image><read filename="text:/etc/passwd"/>'
    '<write filename="/tmp/fleetlab-pwned.png"/></image>',
    # Plain text: ImageMagick's TXT coder would render a file's contents into the picture.
    "evil.txt": "root:x:0:0:root:/root:/bin/bash\n",
    # PostScript: a Ghostscript delegate (the usual way to code execution).
    "evil.ps": "%!PS\n/Helvetica findfont 12 scalefont setfont 0 0 moveto (x) show showpage\n",
}


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_the_policy_refuses_hostile_inputs(tmp_path: Path, name: str) -> None:
    hostile = tmp_path / name
    hostile.write_text(HOSTILE[name])
    done = run_here(REGISTRY, "image-thumbnail", hostile, [], tmp_path / "out")
    assert isinstance(done.verdict, Failed) and done.verdict.code == "BINARY_FAILED"
    assert b"not allowed by the security policy" in done.stderr, done.stderr
    assert done.result is None
    assert not Path("/tmp/fleetlab-pwned.png").exists()


def test_the_policy_is_what_refuses_them(tmp_path: Path) -> None:
    # Without the service's MAGICK_CONFIGURE_PATH the same text input is no policy matter.
    hostile = tmp_path / "evil.txt"
    hostile.write_text(HOSTILE["evil.txt"])
    bare = subprocess.run(
        [CONVERT, str(hostile), str(tmp_path / "o.png")],
        capture_output=True, env={"PATH": "/usr/bin:/bin"}, check=False,
    )  # fmt: skip
    assert b"security policy" not in bare.stderr


def age_key(tmp_path: Path) -> tuple[Path, str]:
    key = tmp_path / "key.txt"
    subprocess.run(["/usr/bin/age-keygen", "-o", str(key)], capture_output=True, check=True)
    public = next(
        line.split(": ", 1)[1] for line in key.read_text().splitlines() if "public key" in line
    )
    return key, public


def test_encrypt_makes_what_the_matching_key_decrypts(tmp_path: Path) -> None:
    key, recipient = age_key(tmp_path)
    secret = tmp_path / "secret.bin"
    secret.write_bytes(bytes(range(256)) * 100)
    done = run_here(REGISTRY, "encrypt", secret, [("recipient", recipient)], tmp_path / "out")
    assert isinstance(done.verdict, Succeeded), done.stderr
    assert done.result is not None and done.result.name == "result.age"
    ciphertext = done.result.read_bytes()
    assert ciphertext.startswith(b"age-encryption.org/v1") and secret.read_bytes() not in ciphertext
    plain = subprocess.run(
        ["/usr/bin/age", "--decrypt", "--identity", str(key), str(done.result)],
        capture_output=True, check=True,
    )  # fmt: skip
    assert plain.stdout == secret.read_bytes()


@pytest.mark.parametrize(
    "params",
    [
        [],  # a recipient is required
        [("recipient", "age1" + "b" * 58)],  # 'b' is not in bech32's alphabet
        [("recipient", "ssh-ed25519 AAAA")],
        [("recipient", "-r")],
        [("recipient", "age1" + "q" * 57)],  # one character short
    ],
)
def test_encrypt_takes_only_an_age_recipient(tmp_path: Path, params: list[tuple[str, str]]) -> None:
    data = tmp_path / "x"
    data.write_text("x")
    with pytest.raises(ParameterRejected):
        run_here(REGISTRY, "encrypt", data, params, tmp_path)


def test_a_recipient_with_a_typo_is_refused_before_age_runs(tmp_path: Path) -> None:
    _, recipient = age_key(tmp_path)
    assert is_age_recipient(recipient)
    wrong = recipient[:-1] + ("q" if recipient[-1] != "q" else "p")  # the checksum breaks
    assert not is_age_recipient(wrong) and not is_age_recipient(recipient.upper())
    data = tmp_path / "x"
    data.write_text("x")
    with pytest.raises(ParameterRejected, match="must be an age recipient"):
        run_here(REGISTRY, "encrypt", data, [("recipient", wrong)], tmp_path)
