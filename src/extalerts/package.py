"""Build the rendered Splunk app into an installable ``.tgz`` (deployment server, Splunk Cloud ACS).

The archive holds exactly the files ``render --provider splunk`` writes under ``splunk/<app>/``, with
the app directory at its root, and is byte-for-byte reproducible: fixed order, times and owners.
Every ``.conf`` file is parsed again before it goes in, and app.conf checked for what Splunk Cloud's
vetting (AppInspect) refuses, so that a ``--templates`` override cannot bring it back.
"""

from __future__ import annotations

import gzip
import io
import re
import tarfile
from pathlib import Path

from extalerts.errors import RenderError
from extalerts.render import render
from extalerts.render.conf import ConfSyntaxError, parse_conf
from extalerts.spec.loader import Spec

#: 2026-01-01T00:00:00Z: a fixed time for every member, so the same spec gives the same archive.
FIXED_MTIME = 1_767_225_600


def app_files(spec: Spec, templates_dir: Path | None = None) -> dict[str, str]:
    """The app's files, by path inside the archive (``<app>/default/app.conf`` …)."""
    prefix = "splunk/"
    app = spec.splunk_app
    files = {
        f.path[len(prefix) :]: f.content
        for f in render(spec, ["splunk"], templates_dir)
        if f.path.startswith(f"{prefix}{app}/")
    }
    problems = []
    for path, content in sorted(files.items()):
        if path.endswith((".conf", ".meta")):
            try:
                parse_conf(content)
            except ConfSyntaxError as exc:
                problems.append(f"{path}: {exc}")
    problems.extend(
        f"{app}/default/app.conf: {p}" for p in app_conf_problems(files.get(f"{app}/default/app.conf", ""), app)
    )
    if problems:
        raise RenderError("splunk app", problems)
    return files


def app_conf_problems(text: str, app: str) -> list[str]:
    """What in app.conf would stop Splunk, or Splunk Cloud's vetting (AppInspect), installing the app."""
    try:
        stanzas = {stanza.name: stanza.as_dict() for stanza in parse_conf(text)}
    except ConfSyntaxError:
        return []  # reported by the caller's parse
    package, ids, install = (stanzas.get(name, {}) for name in ("package", "id", "install"))
    problems = []
    if package.get("id") != app:
        problems.append(f"[package] id must be {app} (the app's folder name)")
    if ids.get("name") != app:
        problems.append(f"[id] name must be {app}: Splunk needs it to install the app, and it must equal [package] id")
    if not _SEMVER.fullmatch(ids.get("version", "")):
        problems.append(f"[id] version must be SemVer, like 1.0.0 (is {ids.get('version')!r})")
    if install.get("is_configured", "0").strip().lower() not in ("0", "false", "f", "no"):
        problems.append("[install] is_configured must be 0 or absent: Splunk Cloud refuses an app marked as set up")
    if not install.get("build", "").isdigit() or int(install["build"]) < 1:
        problems.append(f"[install] build must be a positive integer (is {install.get('build')!r})")
    return problems


#: SemVer 2.0.0 core version with optional pre-release and build metadata, as AppInspect checks [id] version.
_SEMVER = re.compile(
    r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)"
    r"(?:-(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*)(?:\.(?:0|[1-9]\d*|\d*[a-zA-Z-][0-9a-zA-Z-]*))*)?"
    r"(?:\+[0-9a-zA-Z-]+(?:\.[0-9a-zA-Z-]+)*)?"
)


def build_package(spec: Spec, out: Path, templates_dir: Path | None = None) -> list[str]:
    """Write the app archive to ``out``; returns the member paths."""
    files = app_files(spec, templates_dir)
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        directories: set[str] = set()
        for path in files:
            parent = Path(path).parent
            while str(parent) != ".":
                directories.add(str(parent))
                parent = parent.parent
        for directory in sorted(directories):
            info = tarfile.TarInfo(directory)
            info.type, info.mode, info.mtime = tarfile.DIRTYPE, 0o755, FIXED_MTIME
            archive.addfile(info)
        for path, content in sorted(files.items()):
            data = content.encode("utf-8")
            info = tarfile.TarInfo(path)
            info.size, info.mode, info.mtime = len(data), 0o644, FIXED_MTIME
            archive.addfile(info, io.BytesIO(data))
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open("wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as compressed:
        compressed.write(buffer.getvalue())
    return sorted(files)
