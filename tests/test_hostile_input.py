"""Hostile and broken input: every case is a located error (exit 1), within bounded time and memory.

The bounds are guards, not benchmarks: each case runs in a subprocess whose address space is capped
(``RLIMIT_AS``) and which is killed after a generous timeout; a case that needed the unbounded
memory or time it once took fails there rather than slowing the suite.
"""

from __future__ import annotations

import gzip
import json
import os
import resource
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from extalerts.engine import MAX_LINE_BYTES, gzip_damage
from extalerts.errors import FilterSyntaxError, SpecError, SpecIssue
from extalerts.filter import parse
from extalerts.rule_tests import Series
from extalerts.spec import load_spec
from extalerts.spec.loader import MAX_YAML_DEPTH, MAX_YAML_NODES
from tests.conftest import MONITORS, write

#: Address space a validate run may use: well above what a normal run maps, far below a runaway one.
VALIDATE_MEMORY = 200 * 1024**2
#: Generous: a loaded shared machine; the runaway cases took minutes.
TIMEOUT_S = 60

RULE = """\
version: 1
targets:
  chat: {{slack: {{workspace: acme, channel: alerts}}}}
rules:
  - id: errors
    title: {title}
    severity: high
    filter: {filter}
    signal: {{kind: count}}
    window: 5m
    thresholds: {thresholds}
    notify: [chat]
"""


def rule_text(title: str = "Errors", filter: str = "'Outcome != \"ok\"'", thresholds: str = "{critical: 1}") -> str:
    return RULE.format(title=title, filter=filter, thresholds=thresholds)


def billion_laughs(levels: int = 9) -> str:
    lines = ["version: 1", "overrides:", '  l0: &l0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]']
    lines += [f"  l{n}: &l{n} [{', '.join([f'*l{n - 1}'] * 9)}]" for n in range(1, levels + 1)]
    return "\n".join(lines) + "\n"


def _limit_memory(limit: int) -> None:
    resource.setrlimit(resource.RLIMIT_AS, (limit, limit))


def run_bounded(*args: str, memory: int = VALIDATE_MEMORY, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``extalerts ARGS`` in a subprocess limited to ``memory`` bytes of address space."""
    return subprocess.run(
        [sys.executable, "-m", "extalerts", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=TIMEOUT_S,
        preexec_fn=lambda: _limit_memory(memory),
        env={**os.environ, "NO_COLOR": "1"},
        check=False,
    )


HOSTILE_SPECS = {
    "billion laughs, 9 alias levels": (billion_laughs(), "values once aliases are expanded"),
    "100,000 nested brackets": ("version: 1\nrules: " + "[" * 100_000 + "]" * 100_000 + "\n", "nested deeper than"),
    "5,000 nested not": (rule_text(filter="'" + "not " * 5000 + 'Outcome == "ok"\''), "nested deeper than 32"),
    "5,000 nested parentheses": (
        rule_text(filter="'" + "(" * 5000 + 'Outcome == "ok"' + ")" * 5000 + "'"),
        "nested deeper than 32",
    ),
    "a 5,000-digit threshold": (rule_text(thresholds="{critical: " + "9" * 5000 + "}"), "a number of 5,000 characters"),
    "a 5,000-digit filter value": (rule_text(filter="'CPUTimeMs > " + "9" * 5000 + "'"), "a number of 5,000"),
    "a NaN threshold": (rule_text(thresholds="{critical: .nan}"), "finite number"),
    "an infinite threshold": (rule_text(thresholds="{critical: .inf}"), "finite number"),
    "a threshold past the largest float": (rule_text(thresholds="{critical: 1e400}"), "finite number"),
    "a NUL in a title": (rule_text(title='"Err\\0ors"'), "control character U+0000"),
    "an escape character in a description": (
        rule_text() + '    description: "colour \\e[31m"\n',
        "control character U+001B",
    ),
    "a tab in a flow mapping": (
        rule_text().replace("{kind: count}", "{kind: ratio, match: 'Outcome == \"ok\"', min\t_events: 20}"),
        "YAML syntax error",
    ),
    "a Datadog source query with an unbalanced ]": (
        rule_text() + "sources:\n  workers: {datadog: {query: 'source:cloudflare ]'}}\n",
        "datadog.query: unexpected `]`",
    ),
}


@pytest.mark.parametrize("case", list(HOSTILE_SPECS))
def test_hostile_spec_is_a_located_error_in_bounded_memory(tmp_path: Path, case: str) -> None:
    text, message = HOSTILE_SPECS[case]
    (tmp_path / "monitors").mkdir()
    (tmp_path / "monitors" / "rules.yaml").write_text(text, encoding="utf-8")
    result = run_bounded("validate", "monitors/", cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "error: unexpected" not in result.stderr
    first = result.stderr.splitlines()[0]
    assert first.startswith("monitors/rules.yaml:"), first  # file and line
    assert first.split(":")[1].isdigit(), first
    assert message in result.stderr


def issues_of(tmp_path: Path, text: str) -> list[SpecIssue]:
    write(tmp_path / "rules.yaml", text)
    with pytest.raises(SpecError) as caught:
        load_spec([tmp_path])
    return list(caught.value.issues)


def test_aliases_within_the_limit_are_read(tmp_path: Path) -> None:
    # Three levels of nine (1,000 values or so) is far below the limit: aliases as such are fine.
    text = rule_text() + billion_laughs(3).removeprefix("version: 1\n").replace("overrides:", "x-aliases:")
    (issue,) = issues_of(tmp_path, text)
    assert "unknown key `x-aliases`" in issue.message  # read and validated, not refused as too large
    assert MAX_YAML_NODES >= 10_000


def test_nesting_just_within_the_depth_limit_is_read(tmp_path: Path) -> None:
    deep = "[" * (MAX_YAML_DEPTH - 1) + "]" * (MAX_YAML_DEPTH - 1)
    (issue,) = issues_of(tmp_path, f"version: 1\nrules: {deep}\n")
    assert "nested" not in issue.message
    (issue,) = issues_of(tmp_path, f"version: 1\nrules: [{deep}]\n")
    assert issue.message == f"nested deeper than {MAX_YAML_DEPTH} levels"
    assert issue.location.line == 2


def test_filter_nesting_within_the_limit_parses() -> None:
    assert parse("not " * 31 + 'Outcome == "ok"') is not None
    with pytest.raises(FilterSyntaxError, match="nested deeper than 32"):
        parse("(" * 33 + 'Outcome == "ok"' + ")" * 33)


def test_a_long_group_by_is_one_error_not_one_per_field(tmp_path: Path) -> None:
    fields = ", ".join(f"f{n}" for n in range(10_000))
    issues = issues_of(tmp_path, rule_text() + f"    group_by: [{fields}]\n")
    assert len(issues) == 1
    assert "group_by: List should have at most 4 items" in issues[0].message
    assert issues[0].location.line == 13


def test_a_dangling_spec_symlink_is_reported_not_skipped(tmp_path: Path) -> None:
    write(tmp_path / "rules.yaml", rule_text())
    (tmp_path / "gone.yaml").symlink_to("nowhere.yaml")
    (issue,) = issues_of(tmp_path, rule_text())
    assert issue.location.path.name == "gone.yaml"
    assert issue.message == "a symbolic link to nowhere.yaml, which does not exist"


def test_a_symlink_loop_is_a_located_error(tmp_path: Path) -> None:
    (tmp_path / "monitors").mkdir()
    (tmp_path / "monitors" / "a.yaml").symlink_to("b.yaml")
    (tmp_path / "monitors" / "b.yaml").symlink_to("a.yaml")
    result = run_bounded("validate", "monitors/a.yaml", cwd=tmp_path)
    assert result.returncode == 1
    assert result.stderr.startswith("monitors/a.yaml: a loop of symbolic links"), result.stderr


# --------------------------------------------------------------------------------------------- rule tests

TEST_FILE = """\
version: 1
tests:
  - name: t
    rule: worker-exception
    input:
{input}
    expect:
      - quiet: true
"""


def test_a_huge_series_is_refused_before_a_minute_is_generated(tmp_path: Path) -> None:
    (tmp_path / "t.yaml").write_text(TEST_FILE.format(input="      - series: {from: 0m, to: 99999999d, per_minute: 1}"))
    result = run_bounded("test", "t.yaml", "--spec", str(MONITORS), cwd=tmp_path)
    assert result.returncode == 1
    assert "t.yaml:6:" in result.stderr
    assert "99999999d is past 31d, the longest a rule test runs" in result.stderr


def test_series_size_is_counted_without_visiting_minutes() -> None:
    series = Series.model_validate(
        {"from": "0m", "to": "31d", "per_minute": 100, "silent": [["1d", "2d"], ["36h", "3d"]]}
    )
    assert series.event_count() == 100 * (31 - 2) * 1440


def test_a_deeply_nested_fixture_line_is_a_bad_line(tmp_path: Path) -> None:
    (tmp_path / "f.ndjson").write_text('{"EventTimestampMs": 1, "Event": ' + "[" * 100_000 + "]" * 100_000 + "}\n")
    (tmp_path / "t.yaml").write_text(TEST_FILE.format(input="      - file: f.ndjson"))
    result = run_bounded("test", "t.yaml", "--spec", str(MONITORS), cwd=tmp_path)
    assert result.returncode == 1
    assert "f.ndjson:1: JSON nested too deeply to read" in result.stderr
    assert "error: unexpected" not in result.stderr


# --------------------------------------------------------------------------------------------- replay

#: Address space a replay may use: DuckDB maps far more than it touches; a runaway replay needed 9 GB.
REPLAY_MEMORY = 3 * 1024**3 // 2
TRAILING = "bytes that are not gzip follow the compressed data, from byte {:,}"
GOOD_EVENTS = 5833


def good_lines(count: int = GOOD_EVENTS) -> list[str]:
    """``count`` events over ten minutes from 2026-01-01T00:00Z, as NDJSON lines."""
    from tests.test_engine import event

    return [json.dumps(event(10 * n / count, Outcome="exception" if n % 97 == 0 else "ok")) for n in range(count)]


def replay(*args: str, cwd: Path) -> tuple[int, dict[str, Any], str]:
    result = run_bounded(
        "replay", *args, "--spec", str(MONITORS), "--memory-limit", "256MB", "-o", "json", memory=REPLAY_MEMORY, cwd=cwd
    )
    return result.returncode, json.loads(result.stdout) if result.returncode == 0 else {}, result.stderr


@pytest.mark.parametrize(
    ("stamp", "shown"),
    [
        (1_767_225_630, "1970-01-21 10:53:45 UTC"),  # seconds, not milliseconds
        (1_767_225_630_000 - 365 * 86_400_000, "2025-01-01 00:00:30 UTC"),  # a year early
        (300_000_000_000_000, "EventTimestampMs 300000000000000"),  # past year 9999
    ],
)
def test_an_event_stamped_far_from_the_rest_is_left_out_and_named(tmp_path: Path, stamp: int, shown: str) -> None:
    lines = good_lines()
    odd = json.loads(lines[100]) | {"EventTimestampMs": stamp}
    lines.insert(3000, json.dumps(odd))
    (tmp_path / "x.ndjson").write_text("\n".join(lines) + "\n")
    code, report, err = replay("x.ndjson", cwd=tmp_path)
    assert code == 0, err
    assert report["events"] == GOOD_EVENTS
    assert report["first"].startswith("2026-01-01 00:00")
    assert report["last"].startswith("2026-01-01 00:09")
    (warning,) = report["warnings"]
    assert "1 event stamped far from the rest of the input" in warning
    assert f"x.ndjson:3001 ({shown})" in warning


def test_sparse_input_apart_by_days_is_all_evaluated(tmp_path: Path) -> None:
    from tests.test_engine import event

    events = [event(day * 1440) for day in range(5)]  # one event a day: no stretch is a bulk
    (tmp_path / "x.ndjson").write_text("".join(json.dumps(e) + "\n" for e in events))
    code, report, err = replay("x.ndjson", cwd=tmp_path)
    assert code == 0, err
    assert report["events"] == 5
    assert not report["warnings"]


def _corrupt_middle(data: bytes) -> bytes:
    damaged = bytearray(data)
    for index in range(len(data) // 2, len(data) // 2 + 40):
        damaged[index] ^= 0x5A
    return bytes(damaged)


def test_gzip_damage_is_found_with_its_offset(tmp_path: Path) -> None:
    text = ("\n".join(good_lines(2000)) + "\n").encode()
    whole = gzip.compress(text)
    cases = {
        "sound.gz": (whole, None),
        "two-members.gz": (whole + gzip.compress(text), None),
        "cut.gz": (whole[:-100], f"the gzip stream is cut short at byte {len(whole) - 100:,}"),
        "crc.gz": (whole[:-8] + bytes(8), f"the gzip data is damaged at byte {len(whole) - 8:,} (incorrect data check"),
        "empty.gz": (b"", "the gzip stream is cut short at byte 0"),
        "trailing.gz": (
            whole + b"junk",
            f"bytes that are not gzip follow the compressed data, from byte {len(whole):,}",
        ),
    }
    for name, (data, expected) in cases.items():
        (tmp_path / name).write_bytes(data)
        damage = gzip_damage(str(tmp_path / name))
        assert (str(damage) if damage else None) == expected or str(damage).startswith(str(expected)), name
    (tmp_path / "middle.gz").write_bytes(_corrupt_middle(whole))
    damage = gzip_damage(str(tmp_path / "middle.gz"))
    assert damage is not None
    assert damage.how == "corrupt"
    assert len(whole) // 2 <= damage.offset < len(whole)


def test_a_sound_gzip_is_checked_by_isal_and_a_damaged_one_again_by_zlib(tmp_path: Path, monkeypatch: Any) -> None:
    """ISA-L tells a sound archive (about four times faster than zlib); any damage, also one ISA-L
    might let pass (zero padding, a member cut short), is for zlib to locate."""
    from extalerts.engine import salvage

    text = ("\n".join(good_lines(2000)) + "\n").encode()
    whole = gzip.compress(text)
    sound = {"sound.gz": whole, "two-members.gz": whole + gzip.compress(text)}
    damaged = {
        "cut.gz": whole[:-100],
        "crc.gz": whole[:-8] + bytes(8),
        "empty.gz": b"",
        "trailing.gz": whole + b"junk",
        "padded.gz": whole + bytes(16),
        "middle.gz": _corrupt_middle(whole),
        "header-only.gz": whole[:10],
    }
    for name, data in {**sound, **damaged}.items():
        (tmp_path / name).write_bytes(data)
    for name in damaged:
        assert not salvage._sound_by_isal(str(tmp_path / name)), name
        assert gzip_damage(str(tmp_path / name)) is not None, name

    def no_zlib(*_: Any) -> None:
        raise AssertionError("a sound archive was inflated with zlib")

    monkeypatch.setattr(salvage, "_inflate_members", no_zlib)
    for name in sound:
        assert gzip_damage(str(tmp_path / name)) is None, name


def test_damage_in_a_later_member_is_doubted_by_isal_and_placed_by_zlib(tmp_path: Path) -> None:
    """The member walk goes on past a sound first member with either inflater: ISA-L doubts the
    second member, zlib places the damage inside it and keeps the first member's lines."""
    from extalerts.engine import salvage

    lines = 2000
    text = ("\n".join(good_lines(lines)) + "\n").encode()
    first, second = gzip.compress(text), _corrupt_middle(gzip.compress(text))
    path = tmp_path / "two-members.gz"
    path.write_bytes(first + second)

    assert not salvage._sound_by_isal(str(path))
    damage = gzip_damage(str(path))
    assert damage is not None
    assert damage.how == "corrupt"
    assert len(first) + len(second) // 2 <= damage.offset < len(first) + len(second)
    kept, salvaged = salvage._salvage_gzip(str(path), str(tmp_path / "kept.ndjson"))
    assert salvaged == damage
    assert lines <= kept < 2 * lines
    assert (tmp_path / "kept.ndjson").read_bytes().startswith(text)


def test_a_member_ending_past_a_megabyte_of_output_in_a_read_is_followed_by_the_next(tmp_path: Path) -> None:
    """A first member of over a megabyte that compresses small ends inside the same read as the
    next member begins, after zlib's output cap was met: zlib goes on to the damaged second member
    (it once inflated the first member's leftover again and again, never finishing)."""
    line = good_lines(1)[0]
    first = gzip.compress((line + "\n").encode() * 10_000)
    second = _corrupt_middle(gzip.compress(("\n".join(good_lines(2000)) + "\n").encode()))
    assert len(first) + len(second) < 1 << 16  # one read
    assert len(line) * 10_000 > 1 << 20  # more than a megabyte out of the first member
    (tmp_path / "x.ndjson.gz").write_bytes(first + second)
    code, report, err = replay("x.ndjson.gz", cwd=tmp_path)
    assert code == 0, err
    (warning,) = report["warnings"]
    offset = int(warning.split("damaged at byte ")[1].split(" ")[0].replace(",", ""))
    assert len(first) + len(second) // 2 <= offset < len(first) + len(second), warning
    assert report["events"] >= 10_000


def test_replay_of_a_gzip_corrupt_in_the_middle_warns_with_the_offset(tmp_path: Path) -> None:
    (tmp_path / "x.ndjson.gz").write_bytes(_corrupt_middle(gzip.compress(("\n".join(good_lines()) + "\n").encode())))
    code, report, err = replay("x.ndjson.gz", cwd=tmp_path)
    assert code == 0, err
    (warning,) = report["warnings"]
    assert warning.startswith("x.ndjson.gz: the gzip data is damaged at byte ")
    assert "--strict stops instead" in warning
    code, _, err = replay("x.ndjson.gz", "--strict", cwd=tmp_path)
    assert code == 1
    assert err.startswith("error: x.ndjson.gz: the gzip data is damaged at byte "), err


def test_a_truncated_gzip_in_a_folder_is_named_and_the_others_replayed(tmp_path: Path) -> None:
    whole = gzip.compress(("\n".join(good_lines()) + "\n").encode())
    folder = tmp_path / "archive"
    folder.mkdir()
    (folder / "a.ndjson.gz").write_bytes(whole)
    (folder / "b.ndjson.gz").write_bytes(whole[:10])
    (folder / "c.ndjson.gz").write_bytes(whole)
    code, report, err = replay("archive", cwd=tmp_path)
    assert code == 0, err
    assert report["events"] == 2 * GOOD_EVENTS
    (warning,) = report["warnings"]
    assert warning.startswith("archive/b.ndjson.gz: the gzip stream is cut short at byte 10, before any whole line")


def test_a_line_too_long_to_read_is_a_bad_line_not_a_bad_file(tmp_path: Path) -> None:
    lines = good_lines(500)
    huge = json.loads(lines[0]) | {"Logs": [{"Level": "log", "Message": ["x" * (3 * MAX_LINE_BYTES)]}]}
    lines.insert(50, json.dumps(huge))
    (tmp_path / "x.ndjson").write_text("\n".join(lines) + "\n")
    code, report, err = replay("x.ndjson", cwd=tmp_path)
    assert code == 0, err
    assert report["events"] == 500
    assert report["bad_lines"] == 1
    (bad,) = report["bad_line_examples"]
    assert bad.startswith("x.ndjson:51: a line longer than 16 MiB")
    code, _, err = replay("x.ndjson", "--strict", cwd=tmp_path)
    assert code == 1
    assert "x.ndjson:51: a line longer than 16 MiB" in err


def test_a_deeply_nested_replay_line_is_a_bad_line(tmp_path: Path) -> None:
    lines = good_lines(100)
    lines.insert(10, '{"EventTimestampMs": 1, "Event": ' + "[" * 100_000 + "]" * 100_000 + "}")
    (tmp_path / "x.ndjson").write_text("\n".join(lines) + "\n")
    code, report, err = replay("x.ndjson", cwd=tmp_path)
    assert code == 0, err
    assert "error: unexpected" not in err
    assert report["events"] == 100


def test_two_events_decades_apart_evaluate_one_bounded_stretch(tmp_path: Path) -> None:
    from extalerts.engine import Engine
    from tests.test_engine import event

    late = event(0)
    early = late | {"EventTimestampMs": late["EventTimestampMs"] // 1000}  # half the input, in seconds
    (tmp_path / "x.ndjson").write_text(json.dumps(early) + "\n" + json.dumps(late) + "\n")
    engine = Engine(load_spec([MONITORS]), rules=["worker-exception"])
    engine.load([str(tmp_path / "x.ndjson")])
    result = engine.evaluate()
    assert (result.first_ms, result.last_ms) == (late["EventTimestampMs"], late["EventTimestampMs"])
    assert result.rules["worker-exception"].evaluations < 10
    assert "x.ndjson:1 (1970-01-21" in result.warnings[0]


def test_values_of_the_wrong_type_are_counted_per_field_with_the_first_line(tmp_path: Path) -> None:
    from extalerts.engine import Engine
    from tests.test_engine import event

    events = [event(n / 10) for n in range(100)]
    wrong = {10: {"Outcome": 42}, 11: {"ScriptName": {}}, 12: {"CPUTimeMs": "fast"}, 40: {"CPUTimeMs": "slow"}}
    for index, fields in wrong.items():
        events[index] |= fields
    events[13]["Event"] = {"Response": {"Status": "500"}}
    events[14]["CPUTimeMs"] = True
    (tmp_path / "x.ndjson").write_text("".join(json.dumps(e) + "\n" for e in events))
    engine = Engine(load_spec([MONITORS]))
    engine.load([str(tmp_path / "x.ndjson")])
    warnings = engine.evaluate().warnings
    fate = "(converted where they can be, else read as missing)"
    assert f"`CPUTimeMs`: 3 values not numbers, first at {tmp_path}/x.ndjson:13 {fate}" in warnings
    assert f"`Outcome`: 1 value not text, first at {tmp_path}/x.ndjson:11 {fate}" in warnings
    assert f"`ScriptName`: 1 value not text, first at {tmp_path}/x.ndjson:12 {fate}" in warnings
    assert f"`Event.Response.Status`: 1 value not numbers, first at {tmp_path}/x.ndjson:14 {fate}" in warnings


def _wrong_types(tmp_path: Path, *, variant: bool) -> Path:
    """The wrong types above, and others (JSON nulls, which are no value; a status as an object),
    in a file the typed reading holds or, with one lowercase Logs entry, one read the exact way."""
    from tests.test_engine import event

    events = [event(n / 10) for n in range(60)]
    wrong = {10: {"Outcome": 42}, 11: {"ScriptName": {}}, 12: {"CPUTimeMs": "fast"}, 13: {"CPUTimeMs": True}}
    wrong |= {20: {"Outcome": None, "ScriptName": None, "CPUTimeMs": None}, 21: {"Entrypoint": ["DO"]}}
    for index, fields in wrong.items():
        events[index] |= fields
    events[14]["Event"] = {"Response": {"Status": "500"}}
    events[15]["Event"] = {"Response": {"Status": {"code": 500}}}
    events[16]["Event"] = {"Response": {"Status": None}}
    if variant:
        events[30]["Logs"] = [{"level": "log", "message": ["ERROR_CODE_INVALID_URL"]}]
    path = tmp_path / "x.ndjson"
    path.write_text("".join(json.dumps(e) + "\n" for e in events))
    return path


@pytest.mark.parametrize("variant", [False, True], ids=["wrong-types", "wrong-types-and-lowercase"])
def test_a_file_with_wrong_types_is_read_the_exact_way_which_counts_them(tmp_path: Path, variant: bool) -> None:
    """The typed reading converts only values of their field's own type: a file where one may be of
    another type is read again the exact way, which counts them, whatever else sent it there."""
    from extalerts.engine import Engine

    engine = Engine(load_spec([MONITORS]))
    engine.load([str(_wrong_types(tmp_path, variant=variant))])
    assert engine.exact_reads == 1
    fate = "(converted where they can be, else read as missing)"
    assert sorted(engine.evaluate().warnings) == [
        f"`CPUTimeMs`: 2 values not numbers, first at {tmp_path}/x.ndjson:13 {fate}",
        f"`Entrypoint`: 1 value not text, first at {tmp_path}/x.ndjson:22 {fate}",
        f"`Event.Response.Status`: 2 values not numbers, first at {tmp_path}/x.ndjson:15 {fate}",
        f"`Outcome`: 1 value not text, first at {tmp_path}/x.ndjson:11 {fate}",
        f"`ScriptName`: 1 value not text, first at {tmp_path}/x.ndjson:12 {fate}",
    ]


@pytest.mark.parametrize("wrong", [False, True], ids=["right-types", "wrong-types"])
def test_the_type_check_reads_again_only_a_file_with_wrong_types(tmp_path: Path, monkeypatch: Any, wrong: bool) -> None:
    """The type check costs a file of the types Logpush writes no second read: the scan that
    aggregates it checks them; only a file where a value may be of another type is read again."""
    from extalerts.engine import Engine, scan
    from tests.test_engine import event

    scans: list[str] = []
    scanner_db = scan._scanner_db

    class Recorder:
        """A map step's connection, recording every query that reads a file."""

        def __init__(self, db: Any) -> None:
            self.db = db

        def __getattr__(self, name: str) -> Any:
            return getattr(self.db, name)

        def execute(self, query: str, *args: Any) -> Any:
            if "read_json(" in query:
                scans.append(query)
            return self.db.execute(query, *args)

    monkeypatch.setattr(scan, "_scanner_db", lambda *args: Recorder(scanner_db(*args)))
    source = _wrong_types(tmp_path, variant=False)
    if not wrong:
        source.write_text("".join(json.dumps(event(n / 10)) + "\n" for n in range(60)))
    engine = Engine(load_spec([MONITORS]))
    engine.load([str(source)])
    assert len(engine.evaluate().warnings) == (5 if wrong else 0)
    assert len(scans) == (2 if wrong else 1)
    assert engine.exact_reads == int(wrong)


def test_the_event_time_of_another_type_is_counted_apart(tmp_path: Path) -> None:
    """A rule reading EventTimestampMs: the scan reads it as the event time, so a scan of the JSON
    apart checks its type (text where a number belongs)."""
    from extalerts.engine import Engine
    from tests.test_engine import event

    rule = "  - {id: r, title: R, severity: low, filter: 'EventTimestampMs > 0', signal: {kind: count},"
    rule += " window: 5m, thresholds: {critical: 1000}}\n"
    spec = load_spec([write(tmp_path / "spec.yaml", "version: 1\nrules:\n" + rule)])
    events = [event(n / 10) for n in range(20)]
    events[5]["EventTimestampMs"] = str(events[5]["EventTimestampMs"])
    (tmp_path / "x.ndjson").write_text("".join(json.dumps(e) + "\n" for e in events))
    engine = Engine(spec)
    engine.load([str(tmp_path / "x.ndjson")])
    fate = "(converted where they can be, else read as missing)"
    assert engine.evaluate().warnings == [
        f"`EventTimestampMs`: 1 value not numbers, first at {tmp_path}/x.ndjson:6 {fate}"
    ]
