"""Fuzzing the three readers of user input: the spec loader, the rule-test loader, the replay reader.

Inputs are the bundled files with hostile edits (aliases, deep nesting, huge numbers, control and
tab characters, cut and spliced text) and NDJSON lines of every shape, plain or gzip, cut or
corrupt. Every case must end in success or in the reader's own located error, never in an
unexpected exception; each runs under a memory cap (the soft ``RLIMIT_AS``, lowered for the case
and raised again after) and an alarm, so a runaway case fails instead of stalling the suite. The
example budget is fixed and the runs derandomized: a failure reproduces on the next run.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import resource
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from extalerts.engine import Engine, EngineError
from extalerts.errors import SpecError, TestFileError
from extalerts.render import render
from extalerts.rule_tests import load_tests
from extalerts.spec import load_spec
from extalerts.spec.loader import Spec
from tests.conftest import MONITORS
from tests.contract_spec import PROVIDERS

BUDGET = settings(
    max_examples=40,
    derandomize=True,
    deadline=None,
    # No shrinking: a failure prints its (derandomized, reproducible) example at once.
    phases=[Phase.explicit, Phase.reuse, Phase.generate],
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture, HealthCheck.data_too_large],
)
#: Memory a case may add to what the test process has mapped, and the alarm: guards, not measures.
CASE_MEMORY = 1024**3
CASE_SECONDS = 60


def _mapped_bytes() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


class CaseTimeoutError(Exception):
    """A fuzz case ran longer than :data:`CASE_SECONDS`."""


@contextlib.contextmanager
def bounded() -> Iterator[None]:
    """Run one case under a memory cap and an alarm; both are lifted afterwards."""
    soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    cap = _mapped_bytes() + CASE_MEMORY
    resource.setrlimit(resource.RLIMIT_AS, (cap if hard == resource.RLIM_INFINITY else min(cap, hard), hard))

    def alarm(*_: object) -> None:
        raise CaseTimeoutError(f"a case ran over {CASE_SECONDS} s")

    previous = signal.signal(signal.SIGALRM, alarm)
    signal.alarm(CASE_SECONDS)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)
        resource.setrlimit(resource.RLIMIT_AS, (soft, hard))


# --------------------------------------------------------------------------------------------- hostile text

HOSTILE_PIECES = [
    "[" * 200,
    "{" * 200,
    "&a [1, 2, 3, 4, 5, 6, 7, 8, 9]",
    "*a",
    "[*a, *a, *a, *a, *a, *a, *a, *a, *a]",
    "9" * 5000,
    "1e400",
    ".nan",
    "-.inf",
    '"\\0"',
    '"\\e[31m"',
    "\t",
    "{min\t_events: 20}",
    "not " * 300,
    "(" * 300,
    ")" * 300,
    "]",
    "'",
    '"',
    "\n- ",
    ": ",
    "\n  ",
    "!!python/object:os.system",
    "%YAML 1.1\n",
    "---\n",
    "\ufeff",
    "\u2028",
    "\x85",
]


@st.composite
def edited(draw: st.DrawFn, text: str) -> str:
    """``text`` after a few hostile edits: insertions, deletions and splices at random places."""
    for _ in range(draw(st.integers(1, 4))):
        at = draw(st.integers(0, len(text)))
        kind = draw(st.sampled_from(["insert", "insert", "delete", "splice"]))
        if kind == "insert":
            piece = draw(st.sampled_from(HOSTILE_PIECES) | st.text(max_size=20))
            text = text[:at] + piece + text[at:]
        elif kind == "delete":
            text = text[:at] + text[at + draw(st.integers(1, 200)) :]
        else:
            start = draw(st.integers(0, len(text)))
            text = text[:at] + text[start : start + draw(st.integers(1, 300))] + text[at:]
    return text


SPEC_TEXTS = {path.name: path.read_text(encoding="utf-8") for path in sorted(MONITORS.glob("*.yaml"))}
TEST_TEXTS = {path.name: path.read_text(encoding="utf-8") for path in sorted((MONITORS / "tests").glob("*.yaml"))}


def _assert_located(error: SpecError, where: Path) -> None:
    assert error.issues
    for issue in error.issues:
        assert issue.location.path.parent == where or issue.location.path == where, issue


@pytest.fixture(scope="module")
def bundled_spec() -> Spec:
    return load_spec([MONITORS])


@BUDGET
@given(st.sampled_from(sorted(SPEC_TEXTS)).flatmap(lambda name: st.tuples(st.just(name), edited(SPEC_TEXTS[name]))))
def test_fuzz_spec_loader(tmp_path_factory: pytest.TempPathFactory, case: tuple[str, str]) -> None:
    name, text = case
    folder = tmp_path_factory.mktemp("spec")
    for other, original in SPEC_TEXTS.items():
        (folder / other).write_text(text if other == name else original, encoding="utf-8")
    with bounded():
        try:
            spec = load_spec([folder])
        except SpecError as error:
            _assert_located(error, folder)
            return
        render(spec, [*PROVIDERS, "cloudflare"])  # accepted means renderable: no "fails at render" after validate


@BUDGET
@given(st.sampled_from(sorted(TEST_TEXTS)).flatmap(lambda name: st.tuples(st.just(name), edited(TEST_TEXTS[name]))))
def test_fuzz_rule_test_loader(
    tmp_path_factory: pytest.TempPathFactory, bundled_spec: Spec, case: tuple[str, str]
) -> None:
    _, text = case
    folder = tmp_path_factory.mktemp("tests")
    (folder / "t.yaml").write_text(text, encoding="utf-8")
    with bounded():
        try:
            load_tests([folder / "t.yaml"], bundled_spec)
        except TestFileError as error:
            _assert_located(error, folder)


# --------------------------------------------------------------------------------------------- replay

T0 = 1_767_225_600_000

json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=30),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def event_lines(draw: st.DrawFn) -> bytes:
    lines: list[bytes] = []
    for _ in range(draw(st.integers(1, 60))):
        shape = draw(st.sampled_from(["event", "event", "event", "odd-types", "junk", "deep", "odd-time"]))
        stamp: Any = T0 + draw(st.integers(0, 3_600_000))
        event: dict[str, Any] = {
            "EventTimestampMs": stamp,
            "Outcome": draw(st.sampled_from(["ok", "exception", "exceededCpu"])),
            "ScriptName": draw(st.sampled_from(["conversation-api", "auth-worker"])),
            "EventType": "fetch",
            "Event": {"Request": {"URL": "https://x/", "Method": "GET"}, "Response": {"Status": 200}},
            "CPUTimeMs": draw(st.integers(0, 50)),
            "Logs": [],
            "Exceptions": [],
        }
        if shape == "odd-types":
            event[draw(st.sampled_from(sorted(event)))] = draw(json_values)
        elif shape == "odd-time":
            event["EventTimestampMs"] = draw(
                st.sampled_from([stamp // 1000, stamp - 365 * 86_400_000, 300_000_000_000_000, -5, 2**70, "soon"])
            )
        if shape == "junk":
            lines.append(draw(st.binary(max_size=80)).replace(b"\n", b" "))
        elif shape == "deep":
            lines.append(b'{"EventTimestampMs": 1, "Event": ' + b"[" * 20_000 + b"]" * 20_000 + b"}")
        else:
            lines.append(json.dumps(event).encode())
    return b"\n".join(lines) + b"\n"


@st.composite
def archives(draw: st.DrawFn) -> tuple[str, bytes]:
    data = draw(event_lines())
    packing = draw(st.sampled_from(["plain", "gzip", "gzip-cut", "gzip-corrupt", "gzip-joined"]))
    if packing == "plain":
        return "x.ndjson", data
    packed = gzip.compress(data)
    if packing == "gzip-cut":
        packed = packed[: draw(st.integers(0, len(packed) - 1))]
    elif packing == "gzip-corrupt":
        at = draw(st.integers(0, len(packed) - 1))
        packed = packed[:at] + bytes([packed[at] ^ draw(st.integers(1, 255))]) + packed[at + 1 :]
    elif packing == "gzip-joined":
        packed += draw(st.sampled_from([gzip.compress(data), b"\0" * 10, b"junk"]))
    return "x.ndjson.gz", packed


@BUDGET
@given(archives(), st.booleans())
def test_fuzz_replay_reader(
    tmp_path_factory: pytest.TempPathFactory, bundled_spec: Spec, archive: tuple[str, bytes], strict: bool
) -> None:
    name, data = archive
    path = tmp_path_factory.mktemp("replay") / name
    path.write_bytes(data)
    with bounded():
        engine = Engine(bundled_spec, memory_limit="256MB", threads=1)
        try:
            engine.load([str(path)], strict=strict)
        except EngineError as error:
            failure: EngineError | None = error
        else:
            failure = None
            result = engine.evaluate()
    if failure is not None:
        assert str(path) in str(failure)  # named: the file, and the line or the byte where known
        return
    assert result.events >= 0
    for bad in result.bad_lines:
        assert bad.source == str(path)
