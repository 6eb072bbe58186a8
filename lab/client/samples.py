"""Sample inputs for the example requests: a fake video and a tone made by sox."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import TYPE_CHECKING

from lab.errors import LabError

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FAKE_VIDEO = b"FAKEVIDEO duration=180\n" + bytes(range(256)) * 64


def make(folder: Path) -> dict[str, Path]:
    """Write the sample files into ``folder``; return them by name."""
    folder.mkdir(parents=True, exist_ok=True)
    video = folder / "convert.mov"
    video.write_bytes(FAKE_VIDEO)
    tone = folder / "tone.wav"
    sox = shutil.which("sox")
    if sox is None:
        raise LabError("sox is not installed; run `make deps` (it installs Debian's sox)")
    subprocess.run(
        [sox, "-n", "-r", "8000", "-c", "1", str(tone), "synth", "1", "sine", "440"],
        check=True,
        capture_output=True,
    )
    return {"convert.mov": video, "tone.wav": tone}


def upload(s3: S3Client, bucket: str, files: dict[str, Path]) -> None:
    """Put the samples where the example requests look for them."""
    s3.upload_file(str(files["convert.mov"]), bucket, "examples/clip.fakevideo")
    s3.upload_file(str(files["tone.wav"]), bucket, "examples/tone.wav")
