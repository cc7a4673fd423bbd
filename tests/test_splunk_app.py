"""The packaged Splunk app: what Splunk Cloud's vetting (AppInspect, cloud tags) asks of app.conf, a
version that changes with the content, and AppInspect itself on the package (.ci/appinspect.py)."""

from __future__ import annotations

import io
import re
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from extalerts.errors import RenderError
from extalerts.package import app_conf_problems, app_files, build_package
from extalerts.render.conf import parse_conf
from extalerts.spec import load_spec
from tests.conftest import MONITORS, REPO

APP = "extalerts_workers"
APP_CONF = f"{APP}/default/app.conf"
SEMVER = re.compile(r"(0|[1-9]\d*)\.(0|[1-9]\d*)\.(0|[1-9]\d*)")


def app_conf(spec_dir: Path) -> dict[str, dict[str, str]]:
    return {s.name: s.as_dict() for s in parse_conf(app_files(load_spec([spec_dir]))[APP_CONF])}


def test_app_conf_has_what_splunk_cloud_vetting_asks_for(spec_dir: Path) -> None:
    stanzas = app_conf(spec_dir)
    assert stanzas["id"]["name"] == stanzas["package"]["id"] == APP
    assert "is_configured" not in stanzas["install"]
    version, build = stanzas["id"]["version"], stanzas["install"]["build"]
    assert SEMVER.fullmatch(version)
    assert stanzas["launcher"]["version"] == version
    assert version == f"1.0.{build}"
    assert int(build) >= 1


def test_version_and_build_change_with_the_content_only(spec_dir: Path) -> None:
    first = app_conf(spec_dir)
    assert app_conf(spec_dir) == first  # same content, same release
    rules = spec_dir / "worker-errors.yaml"
    rules.write_text(rules.read_text().replace("{critical: 100, warning: 50}", "{critical: 120, warning: 50}"))
    changed = app_conf(spec_dir)
    assert changed["id"]["version"] != first["id"]["version"]
    assert changed["install"]["build"] != first["install"]["build"]
    assert {k: v for k, v in changed.items() if k not in ("id", "install", "launcher")} == {
        k: v for k, v in first.items() if k not in ("id", "install", "launcher")
    }


@pytest.mark.parametrize(
    ("replace", "by", "problem"),
    [
        ("state = enabled", "state = enabled\nis_configured = 1", "[install] is_configured must be 0 or absent"),
        ("[id]\nname = {{ app }}", "[id]\nname = other", "[id] name must be extalerts_workers"),
        ("[id]\nname = {{ app }}\nversion = {{ version }}", "[id]\nname = {{ app }}\nversion = 1.0", "SemVer"),
        ("build = {{ build }}", "build = 0", "[install] build must be a positive integer"),
    ],
)
def test_package_refuses_an_app_conf_vetting_would_refuse(tmp_path: Path, replace: str, by: str, problem: str) -> None:
    """A --templates override must not bring back what AppInspect fails."""
    templates = tmp_path / "templates"
    shutil.copytree(REPO / "templates", templates)
    template = templates / "splunk" / "app.conf.j2"
    assert replace in template.read_text()
    template.write_text(template.read_text().replace(replace, by))
    with pytest.raises(RenderError, match=re.escape(problem)):
        build_package(load_spec([MONITORS]), tmp_path / "app.tgz", templates)


def test_app_conf_problems_accepts_the_rendered_app() -> None:
    assert app_conf_problems(app_files(load_spec([MONITORS]))[APP_CONF], APP) == []


def appinspect(package: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, str(REPO / ".ci" / "appinspect.py"), str(package)],
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )


def test_the_packaged_app_passes_appinspect_for_splunk_cloud(tmp_path: Path) -> None:
    package = tmp_path / f"{APP}.tgz"
    build_package(load_spec([MONITORS]), package)
    result = appinspect(package)
    assert result.returncode == 0, result.stdout + result.stderr
    assert re.search(r": 0 failures, 0 errors, \d+ warnings?", result.stdout), result.stdout
    # The only warnings left are the every-minute schedules the README explains.
    assert "warnings the README explains (Splunk Cloud vetting: check_for_gratuitous_cron_scheduling)" in result.stdout


def test_appinspect_gate_fails_on_a_failure_and_names_it(tmp_path: Path) -> None:
    """The app as it was before the [install] fix: AppInspect exits 0 on it, the gate must not."""
    files = app_files(load_spec([MONITORS]))
    files[APP_CONF] = files[APP_CONF].replace("state = enabled", "is_configured = 1\nstate = enabled")
    package = tmp_path / "old.tgz"
    with tarfile.open(package, "w:gz") as archive:
        for path, content in sorted(files.items()):
            data = content.encode()
            info = tarfile.TarInfo(path)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))
    result = appinspect(package)
    assert result.returncode == 1
    assert "FAILURE check_that_setup_has_not_been_performed: default/app.conf:" in result.stderr
    assert "1 problem: Splunk Cloud would refuse the app" in result.stderr
