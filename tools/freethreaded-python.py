#!/usr/bin/env python3
"""Produce a free-threaded CPython 3.13 (``python3.13t``) for skqueue's tests.

Usage: ``tools/freethreaded-python.py``; prints the interpreter's path as its only line
on stdout, so ``PY=$(tools/freethreaded-python.py)`` works in CI.  Progress goes to
stderr, the build's full output to ``<prefix>.log``.

The interpreter lives in ``$SKQUEUE_FT_PREFIX`` (default
``${XDG_CACHE_HOME:-$HOME/.cache}/skqueue/python3.13t``) and is reused while it works
(imports the modules the tests need, and ``sys._is_gil_enabled()`` is False).  Otherwise
it is rebuilt from Debian's ``python3.13`` source package (suite trixie): ``apt-get
source`` runs on a private apt configuration in a temporary directory whose only entry is
a ``deb-src`` line for trixie on the mirror the machine's own apt sources already use, so
no host name is written here and the machine's apt configuration is never changed.

A Python script rather than shell because both apt source formats (one-line and deb822)
must be parsed, and deb822 stanzas with continuation lines are awkward in sh.  It needs
only the standard library, so the system's python3 runs it.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

SUITE = "trixie"
SOURCE_PACKAGE = "python3.13"
# What the test suite imports beyond the core (pip needs ssl too); a build that silently
# skipped one of these for lack of headers is not a working interpreter.
REQUIRED_MODULES = ("ssl", "ctypes", "sqlite3", "zlib", "bz2", "lzma")
# Written into the prefix before anything is installed there, so a later run may remove
# a prefix it made (even a half-installed one) but never a directory it did not make.
MARKER = ".skqueue-freethreaded"


class Failure(Exception):
    """A step failed; the message is the one line the user sees."""


@dataclass(frozen=True)
class AptSource:
    """One enabled entry of the machine's apt sources, as far as choosing a mirror needs."""

    types: tuple[str, ...]
    uris: tuple[str, ...]
    suites: tuple[str, ...]
    components: tuple[str, ...]
    signed_by: str | None


def prefix_dir() -> Path:
    explicit = os.environ.get("SKQUEUE_FT_PREFIX")
    if explicit:
        return Path(explicit).expanduser().absolute()
    cache = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(cache).expanduser().absolute() / "skqueue" / "python3.13t"


def problem(python: Path) -> str | None:
    """Why ``python`` is unfit (GIL on, a needed module missing), or None if it works."""
    if not python.exists():
        return f"{python} does not exist"
    check = f"import sys, {', '.join(REQUIRED_MODULES)}; assert not sys._is_gil_enabled()"
    result = subprocess.run([str(python), "-c", check], capture_output=True, text=True, check=False)
    if result.returncode == 0:
        return None
    lines = result.stderr.strip().splitlines()
    return lines[-1] if lines else f"exit {result.returncode}"


# -- reading the machine's apt sources ---------------------------------------------------


def apt_source_files() -> list[Path]:
    """The files apt itself reads: ask apt-config, so a moved Dir::Etc is honoured."""
    out = subprocess.run(
        ["apt-config", "shell", "L", "Dir::Etc::SourceList/f", "D", "Dir::Etc::SourceParts/d"],
        capture_output=True,
        text=True,
        check=False,
    ).stdout
    found = dict(re.findall(r"^(\w+)='(.*)'$", out, re.MULTILINE))
    files = [Path(found.get("L", "/etc/apt/sources.list"))]
    parts = Path(found.get("D", "/etc/apt/sources.list.d"))
    if parts.is_dir():
        files += sorted(p for p in parts.iterdir() if p.suffix in (".list", ".sources"))
    return [f for f in files if f.is_file()]


_ONE_LINE = re.compile(r"^(deb|deb-src)\s+(?:\[([^\]]*)\]\s*)?(\S+)\s+(\S+)\s*(.*)$")


def parse_one_line(text: str) -> list[AptSource]:
    """``deb [opt=val ...] URI SUITE COMPONENT...`` lines (sources.list(5))."""
    sources = []
    for raw in text.splitlines():
        match = _ONE_LINE.match(raw.split("#", 1)[0].strip())
        if not match:
            continue
        kind, options, uri, suite, components = match.groups()
        opts = dict(o.split("=", 1) for o in (options or "").split() if "=" in o)
        sources.append(
            AptSource((kind,), (uri,), (suite,), tuple(components.split()), opts.get("signed-by"))
        )
    return sources


def parse_deb822(text: str) -> list[AptSource]:
    """Stanzas of ``Key: value`` fields with indented continuation lines (``.sources``)."""
    sources = []
    for stanza in re.split(r"\n\s*\n", text):
        fields: dict[str, str] = {}
        key = None
        for line in stanza.splitlines():
            if line.startswith("#"):
                continue
            if line[:1].isspace() and key is not None:
                fields[key] += "\n" + line.strip()
            elif ":" in line:
                key, value = line.split(":", 1)
                key = key.strip().lower()
                fields[key] = value.strip()
        if not fields.get("uris") or fields.get("enabled", "yes").lower() == "no":
            continue
        sources.append(
            AptSource(
                tuple(fields.get("types", "").split()),
                tuple(fields["uris"].split()),
                tuple(fields.get("suites", "").split()),
                tuple(fields.get("components", "").split()),
                fields.get("signed-by"),
            )
        )
    return sources


def machine_codename() -> str | None:
    try:
        text = Path("/etc/os-release").read_text()
    except OSError:
        return None
    match = re.search(r"^VERSION_CODENAME=\"?([^\"\n]*)", text, re.MULTILINE)
    return match.group(1) if match else None


def debian_mirror() -> AptSource:
    """The machine's Debian archive entry: the one that serves ``main`` for a release suite.

    Security, updates and backports suites live on other archives or carry no full
    release, so they are skipped; an entry for the machine's own codename is preferred.
    """
    entries: list[AptSource] = []
    for path in apt_source_files():
        text = path.read_text(errors="replace")
        entries += parse_deb822(text) if path.suffix == ".sources" else parse_one_line(text)

    def is_archive(entry: AptSource) -> bool:
        return (
            bool({"deb", "deb-src"} & set(entry.types))
            and "main" in entry.components
            and not entry.uris[0].startswith("cdrom:")
            and any("-" not in s and "/" not in s for s in entry.suites)
        )

    archives = [e for e in entries if is_archive(e)]
    codename = machine_codename()
    archives.sort(key=lambda e: codename not in e.suites)
    if not archives:
        raise Failure("no Debian archive (a 'main' component of a release suite) in apt sources")
    return archives[0]


# -- fetching and building ---------------------------------------------------------------


class Build:
    """One rebuild: a temporary work directory and a log every step appends to."""

    def __init__(self, prefix: Path, work: Path) -> None:
        self.prefix = prefix
        self.work = work
        self.log_path = prefix.with_name(prefix.name + ".log")

    def step(self, what: str, argv: list[str], cwd: Path) -> None:
        print(f"freethreaded-python: {what}", file=sys.stderr, flush=True)
        with self.log_path.open("a") as log:
            log.write(f"\n$ {' '.join(argv)}  (in {cwd})\n")
            log.flush()
            result = subprocess.run(argv, cwd=cwd, stdout=log, stderr=subprocess.STDOUT)
        if result.returncode != 0:
            tail = self.log_path.read_text(errors="replace").splitlines()[-25:]
            print("\n".join(tail), file=sys.stderr)
            raise Failure(f"{what} failed (exit {result.returncode}); full log: {self.log_path}")

    def fetch_source(self, mirror: AptSource) -> Path:
        """``apt-get source --download-only`` on a private apt config; the orig tarball."""
        apt = self.work / "apt"
        for sub in ("sources.list.d", "lists/partial", "cache/archives/partial"):
            (apt / sub).mkdir(parents=True)
        stanza = [
            "Types: deb-src",
            f"URIs: {mirror.uris[0]}",
            f"Suites: {SUITE}",
            "Components: main",
        ]
        if mirror.signed_by:
            stanza.append("Signed-By: " + mirror.signed_by.replace("\n", "\n "))
        (apt / "sources.list.d" / "skqueue-ft.sources").write_text("\n".join(stanza) + "\n")
        options = [
            "-o",
            "Dir::Etc::SourceList=/dev/null",
            "-o",
            f"Dir::Etc::SourceParts={apt / 'sources.list.d'}",
            "-o",
            f"Dir::State::Lists={apt / 'lists'}",
            "-o",
            f"Dir::Cache={apt / 'cache'}",
        ]
        self.step(f"apt-get update (deb-src {SUITE})", ["apt-get", *options, "update"], apt)
        source = self.work / "source"
        source.mkdir()
        self.step(
            f"apt-get source {SOURCE_PACKAGE}",
            ["apt-get", *options, "source", "--download-only", SOURCE_PACKAGE],
            source,
        )
        pattern = f"{SOURCE_PACKAGE}_3.13.*.orig.tar.*"
        tarballs = sorted(p for p in source.glob(pattern) if p.suffix != ".asc")
        if not tarballs:
            raise Failure(f"apt-get source left no {SOURCE_PACKAGE}_3.13.*.orig.tar.* tarball")
        return tarballs[-1]

    def replace_prefix(self) -> None:
        """Empty the prefix for a fresh install, if it is ours (or absent, or empty)."""
        if self.prefix.exists() and any(self.prefix.iterdir()):
            if not (self.prefix / MARKER).exists():
                raise Failure(f"{self.prefix} exists and was not made by this script")
            shutil.rmtree(self.prefix)
        self.prefix.mkdir(parents=True, exist_ok=True)
        (self.prefix / MARKER).write_text("made by skqueue's tools/freethreaded-python.py\n")

    def build(self, tarball: Path) -> None:
        unpacked = self.work / "build"
        unpacked.mkdir()
        self.step(f"unpacking {tarball.name}", ["tar", "-xf", str(tarball)], unpacked)
        trees = sorted(unpacked.glob("Python-3.13.*"))
        if not trees:
            raise Failure(f"{tarball.name} holds no Python-3.13.* tree")
        tree = trees[0]
        jobs = str(len(os.sched_getaffinity(0)))
        self.step(
            "configure --disable-gil",
            ["./configure", "--disable-gil", f"--prefix={self.prefix}"],
            tree,
        )
        self.step(f"make -j{jobs}", ["make", f"-j{jobs}"], tree)
        self.step("make install", ["make", "install"], tree)


def main() -> int:
    prefix = prefix_dir()
    python = prefix / "bin" / "python3.13t"
    if problem(python) is None:
        print(python)
        return 0
    try:
        if shutil.which("apt-get") is None:
            raise Failure("apt-get not found: this script needs a Debian-based machine")
        mirror = debian_mirror()
        prefix.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(prefix="skqueue-ft-", dir=prefix.parent) as tmp:
            build = Build(prefix, Path(tmp))
            build.log_path.write_text(f"mirror: {mirror.uris[0]}, suite {SUITE}\n")
            build.replace_prefix()
            build.build(build.fetch_source(mirror))
        unfit = problem(python)
        if unfit is not None:
            raise Failure(f"{python} was built but fails its check: {unfit} (a -dev package?)")
    except Failure as failure:
        print(f"freethreaded-python: error: {failure}", file=sys.stderr)
        return 1
    print(python)
    return 0


if __name__ == "__main__":
    sys.exit(main())
