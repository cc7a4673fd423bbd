"""The README's emulator and sandbox flows, run as written: every ```sh block that starts
`extalerts emulator` or `extalerts sandbox` runs in bash, stopping at the first failing command.
Only the fixed ports are changed (to free ones, so parallel runs do not collide); the blocks run in
a scratch folder that holds `monitors/` and `.venv/` as the repository does."""

from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MONITORS

REPO = MONITORS.parent
README = REPO / "README.md"
#: The ports the README's blocks name: the emulators' defaults.
README_PORTS = ("8125", "8089", "8787")
#: Credentials the blocks must get from the emulators, never from the environment running the tests.
CREDENTIALS = ("DD_API_KEY", "DD_APP_KEY", "SPLUNK_TOKEN", "SPLUNK_HEC_TOKEN", "CLOUDFLARE_API_TOKEN")
CREDENTIALS += ("CLOUDFLARE_ACCOUNT_ID", "SPLUNK_URL", "SPLUNK_HEC_URL")
TIMEOUT_S = 600


def emulator_blocks() -> list[str]:
    blocks = re.findall(r"^```sh\n(.*?)^```$", README.read_text(), flags=re.MULTILINE | re.DOTALL)
    return [block for block in blocks if re.search(r"extalerts (emulator|sandbox)\b", block)]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def block_id(block: str) -> str:
    command = next(line for line in block.splitlines() if re.search(r"extalerts (emulator|sandbox)\b", line))
    return re.sub(r"\W+", "-", command.split("#")[0].strip().removeprefix(".venv/bin/"))[:60]


def test_the_readme_shows_every_emulator_flow() -> None:
    started = [re.search(r"extalerts (emulator \w+|sandbox)", block) for block in emulator_blocks()]
    assert sorted({m.group(1) for m in started if m}) == [
        "emulator cloudflare",
        "emulator datadog",
        "emulator splunk",
        "sandbox",
    ]


@pytest.mark.parametrize("block", emulator_blocks(), ids=block_id)
def test_readme_emulator_flow_runs_as_written(block: str, tmp_path: Path) -> None:
    script = block
    for port in README_PORTS:
        script = re.sub(rf"\b{port}\b", str(free_port()), script)
    venv = Path(sys.prefix)
    assert (venv / "bin" / "extalerts").exists(), f"run the tests from the virtualenv ({venv} has no extalerts)"
    (tmp_path / "monitors").symlink_to(MONITORS, target_is_directory=True)
    (tmp_path / ".venv").symlink_to(venv, target_is_directory=True)
    env = {name: value for name, value in os.environ.items() if name not in CREDENTIALS}
    env["PATH"] = f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}"  # `extalerts` as installed
    # Stop at the first failure; stop what the block left running when it ends either way.
    harness = "set -eu\ntrap 'status=$?; kill $(jobs -p) 2>/dev/null || true; wait; exit $status' EXIT\n" + script
    process = subprocess.Popen(
        ["bash", "-c", harness],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        out, err = process.communicate(timeout=TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, err = process.communicate()
        pytest.fail(f"the block did not finish in {TIMEOUT_S} s:\n{script}\n--- stdout\n{out}\n--- stderr\n{err}")
    assert process.returncode == 0, f"{script}\n--- stdout\n{out}\n--- stderr\n{err}"
    assert not (tmp_path / ".sandbox.env").exists(), "the sandbox's env file outlived it"
    assert list(tmp_path.glob("build/*.env")) == [], "an emulator's env file outlived it"
