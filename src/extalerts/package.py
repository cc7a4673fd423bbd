"""Build the rendered Splunk app into an installable ``.tgz`` (deployment server, Splunk Cloud ACS).

The archive holds exactly the files ``render --provider splunk`` writes under ``splunk/<app>/``, with
the app directory at its root, and is byte-for-byte reproducible: fixed order, times and owners.
Every ``.conf`` file is parsed again before it goes in.
"""

from __future__ import annotations

import gzip
import io
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
    app_conf = files.get(f"{app}/default/app.conf", "")
    ids = [dict(s.settings).get("id") for s in parse_conf(app_conf) if s.name == "package"]
    if ids != [app]:
        problems.append(f"{app}/default/app.conf: [package] id must be {app}")
    if problems:
        raise RenderError("splunk app", problems)
    return files


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
