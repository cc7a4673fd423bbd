"""Read spec files, collect every problem with its file:line:col, and resolve them into one :class:`Spec`.

Reading happens in three passes, each collecting all of its problems before the next runs:

1. YAML syntax (ruamel keeps the position of every key and item);
2. the strict pydantic models of one file;
3. cross-references: targets, sources, fields, filters, duplicate names across files.
"""

from __future__ import annotations

import contextlib
import difflib
import errno
import re
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import NoneType, UnionType
from typing import Any, Union, get_args, get_origin

from pydantic import BaseModel, ValidationError

from extalerts.errors import FilterFieldError, FilterSyntaxError, Location, SpecError, SpecIssue
from extalerts.fields import Field, FieldCatalog, FieldType, derived_field
from extalerts.filter import Expr, check, fields_of, parse
from extalerts.spec.models import (
    LOGPUSH_FIELDS,
    MAX_GROUP_BY,
    MAX_NOTIFY,
    AbsenceSignal,
    Defaults,
    DerivedType,
    Logpush,
    MeasureSignal,
    RatioSignal,
    Rule,
    Source,
    SpecFile,
    Target,
)

SPEC_SUFFIXES = (".yaml", ".yml")
DEFAULT_EVALUATION_DELAY = 300
DEFAULT_SOURCE_NAME = "workers"

_DERIVED_TYPES = {
    DerivedType.STRING: FieldType.STRING,
    DerivedType.NUMBER: FieldType.NUMBER,
    DerivedType.BOOLEAN: FieldType.BOOLEAN,
}


# --------------------------------------------------------------------------------------------- result


@dataclass(frozen=True)
class ResolvedRule:
    """A rule with every default applied and every reference looked up."""

    rule: Rule
    path: Path
    #: Where the rule is (line and column); computed on demand, as it needs a second, slower parse.
    locate: Callable[[], Location] = field(repr=False, compare=False)
    source_name: str
    source: Source
    filter: Expr | None
    ratio_match: Expr | None
    evaluation_delay: int
    tags: tuple[str, ...]
    targets: tuple[tuple[str, Target], ...]
    renotify: int | None
    throttle: int

    @property
    def id(self) -> str:
        return self.rule.id

    @property
    def location(self) -> Location:
        return self.locate()


@dataclass(frozen=True)
class Spec:
    """Everything in ``monitors/``, merged and checked."""

    files: tuple[Path, ...]
    defaults: Defaults
    sources: Mapping[str, Source]
    targets: Mapping[str, Target]
    catalog: FieldCatalog
    rules: tuple[ResolvedRule, ...]
    logpush: Logpush = field(default_factory=lambda: Logpush())
    #: Each Logpush job's filter as the job's ``filter`` string (None: ships everything).
    logpush_filters: Mapping[str, str | None] = field(default_factory=dict)
    #: Where each target is defined, for messages about it.
    target_locations: Mapping[str, Location] = field(default_factory=dict)
    #: Problems that concern one provider only: `validate` prints them, that provider's push refuses.
    warnings: tuple[SpecIssue, ...] = ()

    @property
    def splunk_app(self) -> str:
        return self.defaults.splunk_app or "extalerts_workers"

    def rule(self, rule_id: str) -> ResolvedRule:
        for resolved in self.rules:
            if resolved.id == rule_id:
                return resolved
        raise KeyError(rule_id)


# --------------------------------------------------------------------------------------------- files


def discover(paths: Iterable[Path]) -> list[Path]:
    """Spec files named by ``paths``: files as given, directories' ``*.yaml``/``*.yml`` (not recursive)."""
    found: list[Path] = []
    for path in paths:
        if path.is_dir():
            # A link that leads nowhere (dangling, or a loop) is listed too: reading it says what is wrong.
            found.extend(
                sorted(p for p in path.iterdir() if p.suffix in SPEC_SUFFIXES and (p.is_file() or p.is_symlink()))
            )
        else:
            found.append(path)
    return list(dict.fromkeys(found))


class Positions:
    """Where things are in one YAML document, looked up by pydantic-style location tuples.

    Reading positions needs ruamel's round-trip parser, several times slower than the C loader that
    reads the data; so the file is parsed again that way only when a location is asked for, which
    is when there is a problem to report.
    """

    def __init__(self, path: Path, text: str) -> None:
        self.path = path
        self.text = text
        self._root: Any = None

    @property
    def root(self) -> Any:
        if self._root is None:
            from ruamel.yaml import YAML
            from ruamel.yaml.error import YAMLError

            yaml = YAML(typ="rt")
            yaml.preserve_quotes = True
            try:
                self._root = yaml.load(self.text)
            except YAMLError:
                # read_yaml refuses what this parser cannot read; should one still slip through,
                # problems are reported at the file rather than not at all.
                self._root = {}
        return self._root

    def is_mapping(self, loc: Sequence[int | str]) -> bool:
        node = self.root
        for part in loc:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return False
        return isinstance(node, Mapping)

    def find(self, loc: Sequence[int | str], *, at_key: bool = False) -> Location:
        node = self.root
        line, col = 0, 0
        for index, part in enumerate(loc):
            last = index == len(loc) - 1
            if isinstance(node, Mapping) and isinstance(part, str) and part in node:
                key_pos = _lc(node, "key", part)
                value_pos = _lc(node, "value", part)
                pos = key_pos if (last and at_key) else (value_pos or key_pos)
                if pos:
                    line, col = pos
                node = node[part]
            elif isinstance(node, list) and isinstance(part, int) and 0 <= part < len(node):
                pos = _lc(node, "item", part)
                if pos:
                    line, col = pos
                node = node[part]
            elif part == "[key]":
                continue
            elif isinstance(node, Mapping) and not isinstance(part, int):
                # A union tag (e.g. the signal kind) or a key that is absent: stay on the parent.
                continue
            else:
                break
        return Location(self.path, line + 1 if line or col else line, col + 1 if line or col else col)


def _lc(node: Any, kind: str, key: Any) -> tuple[int, int] | None:
    lc = getattr(node, "lc", None)
    if lc is None:
        return None
    try:
        pos = getattr(lc, kind)(key)
    except (KeyError, IndexError, TypeError):
        return None
    return (int(pos[0]), int(pos[1])) if pos else None


#: Limits on one YAML file (spec or rule test), checked on the parser's events before anything is
#: built, so that a hostile or broken file is a located error rather than a runaway load.
#: Nodes are counted with every alias expanded (a "billion laughs" file is refused at the limit).
MAX_YAML_NODES = 100_000
MAX_YAML_DEPTH = 32
#: The longest plain scalar that may be read as a number (Python refuses ints past 4,300 digits).
MAX_NUMBER_CHARS = 100
#: Control characters (C0 but tab and newline, DEL, C1): none reaches a rendered file.
_CONTROL_CHARACTERS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")
_NUMBER_START = re.compile(r"[-+]?\.?[0-9]")


def read_yaml(path: Path, issues: list[SpecIssue], *, control_characters: bool = False) -> tuple[Any, str] | None:
    """The file's data and text, or None after recording why it cannot be read. ``control_characters``
    allows them in text (rule test events); spec text reaches rendered files and must not hold any."""
    from ruamel.yaml import YAML
    from ruamel.yaml.error import MarkedYAMLError, YAMLError

    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        if path.is_symlink():
            target = path.readlink()
            problem = f"a symbolic link to {target}, which does not exist"
            issues.append(SpecIssue(Location(path), problem, "fix or remove the link"))
            return None
        hint = "run extalerts where monitors/ is, or name the spec files or directories"
        issues.append(SpecIssue(Location(path), "no such file or directory", hint))
        return None
    except (OSError, UnicodeDecodeError) as exc:
        if isinstance(exc, OSError) and exc.errno == errno.ELOOP:
            issues.append(SpecIssue(Location(path), "a loop of symbolic links", "fix or remove the link"))
        else:
            issues.append(SpecIssue(Location(path), f"cannot read the file: {exc}"))
        return None
    try:
        # The C parser when ruamel.yaml.clib is installed (the C loader also refuses duplicate keys).
        yaml = YAML(typ="safe", pure=not _HAS_CLIB)
        beyond_limits = _structure_problem(path, yaml.parse(text), control_characters=control_characters)
        if beyond_limits is not None:
            issues.append(beyond_limits)
            return None
        data = yaml.load(text)
        if "\t" in text:
            # The C loader takes some tabs (inside a flow mapping) that the parser of positions
            # refuses: read such a file that way too, so that a problem in it can be located.
            for _ in YAML(typ="rt").parse(text):
                pass
        return data, text
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = Location(path, mark.line + 1, mark.column + 1) if mark else Location(path)
        problem = " ".join(str(exc.problem or exc.context or "invalid YAML").split())
        # The C loader's message does not mention the tab; the line it stopped at does.
        stopped_at = text.splitlines()[mark.line] if mark and mark.line < len(text.splitlines()) else ""
        hint = "tabs are not allowed for indentation in YAML" if "\t" in stopped_at or "tab" in problem else ""
        issues.append(SpecIssue(where, f"YAML syntax error: {problem}", hint))
    except YAMLError as exc:
        issues.append(SpecIssue(Location(path), f"YAML syntax error: {' '.join(str(exc).split())}"))
    return None


def _structure_problem(path: Path, events: Iterable[Any], *, control_characters: bool) -> SpecIssue | None:
    """The first limit a YAML event stream breaks (nodes with aliases expanded, nesting depth,
    number length, control characters), located at its event; None when within every limit."""
    from ruamel.yaml.events import AliasEvent, CollectionEndEvent, CollectionStartEvent, ScalarEvent

    sizes: dict[str, int] = {}  # expanded nodes under each anchor
    open_nodes: list[tuple[str | None, int]] = []  # (anchor, nodes expanded when it opened)
    expanded = 0

    def at(event: Any) -> Location:
        mark = event.start_mark
        return Location(path, mark.line + 1, mark.column + 1) if mark is not None else Location(path)

    for event in events:
        if isinstance(event, ScalarEvent):
            expanded += 1
            if event.anchor:
                sizes[event.anchor] = 1
            value = str(event.value)
            if not event.style and len(value) > MAX_NUMBER_CHARS and _NUMBER_START.match(value):
                return SpecIssue(
                    at(event),
                    f"a number of {len(value):,} characters; numbers have at most {MAX_NUMBER_CHARS}",
                    "quote it if it is text",
                )
            bad = None if control_characters else _CONTROL_CHARACTERS.search(value)
            if bad is not None:
                return SpecIssue(
                    at(event),
                    f"control character U+{ord(bad.group()):04X} in text",
                    "remove it: text here is written into rendered monitors and saved searches",
                )
        elif isinstance(event, AliasEvent):
            expanded += sizes.get(str(event.anchor), 1)
        elif isinstance(event, CollectionStartEvent):
            expanded += 1
            open_nodes.append((event.anchor, expanded))
            if len(open_nodes) > MAX_YAML_DEPTH:
                return SpecIssue(
                    at(event), f"nested deeper than {MAX_YAML_DEPTH} levels", "a spec or test file needs a few levels"
                )
        elif isinstance(event, CollectionEndEvent) and open_nodes:
            anchor, opened_at = open_nodes.pop()
            if anchor:
                sizes[anchor] = expanded - opened_at + 1
        if expanded > MAX_YAML_NODES:
            return SpecIssue(
                at(event),
                f"more than {MAX_YAML_NODES:,} values once aliases are expanded",
                "expand fewer aliases (`*name`), or split the file",
            )
    return None


def _clib_available() -> bool:
    import importlib.util

    return importlib.util.find_spec("_ruamel_yaml") is not None


_HAS_CLIB = _clib_available()


def plain(node: Any) -> Any:
    """ruamel's round-trip containers and scalar subclasses → plain Python values for pydantic."""
    if isinstance(node, Mapping):
        return {str(k): plain(v) for k, v in node.items()}
    if isinstance(node, list):
        return [plain(v) for v in node]
    if isinstance(node, bool) or node is None:
        return node
    if isinstance(node, str):
        return str(node)
    if isinstance(node, int):
        return int(node)
    if isinstance(node, float):
        return float(node)
    return node


# --------------------------------------------------------------------------------------------- pydantic → issues


def _unwrap(tp: Any) -> Any:
    origin = get_origin(tp)
    if origin is not None and str(origin) == "typing.Annotated":
        return _unwrap(get_args(tp)[0])
    if origin in (Union, UnionType):
        members = [a for a in get_args(tp) if a is not NoneType]
        if len(members) == 1:
            return _unwrap(members[0])
        return tuple(_unwrap(m) for m in members)
    if hasattr(tp, "__metadata__"):
        return _unwrap(tp.__origin__)
    return tp


def _model_at(loc: Sequence[int | str], root: type[BaseModel] = SpecFile) -> type[BaseModel] | None:
    state: Any = root
    for part in loc:
        if isinstance(state, tuple):
            chosen = [m for m in state if _is_model(m) and _kind_of(m) == part]
            if chosen:
                state = chosen[0]
                continue
            return None
        if _is_model(state):
            info = state.model_fields.get(part) if isinstance(part, str) else None
            if info is None:
                return None
            state = _unwrap(info.annotation)
        elif get_origin(state) is list:
            state = _unwrap(get_args(state)[0])
        elif get_origin(state) is dict:
            state = _unwrap(get_args(state)[1])
        else:
            return None
    return state if _is_model(state) else None


def _is_model(tp: Any) -> bool:
    return isinstance(tp, type) and issubclass(tp, BaseModel)


def _kind_of(model: type[BaseModel]) -> Any:
    info = model.model_fields.get("kind")
    if info is None:
        return None
    args = get_args(info.annotation)
    return args[0] if args else None


def _did_you_mean(word: str, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.5)
    return f"did you mean `{close[0]}`?" if close else ""


def issues_from_validation(
    exc: ValidationError,
    positions: Positions,
    prefix: tuple[int | str, ...] = (),
    label: str = "",
    root: type[BaseModel] = SpecFile,
) -> list[SpecIssue]:
    """Turn pydantic's structured errors into located issues. ``prefix`` is where the validated
    object sits in the file (e.g. ``("rules", 3)``) and ``label`` names it in messages."""
    errors = exc.errors(include_url=False)
    # A misspelt key also makes the real key "missing"; the "did you mean" on the typo says it all.
    suggested: set[tuple[int | str, ...]] = set()
    for error in errors:
        if error["type"] == "extra_forbidden":
            model = _model_at((*prefix, *error["loc"][:-1]), root)
            if model is not None:
                close = difflib.get_close_matches(str(error["loc"][-1]), list(model.model_fields), n=1, cutoff=0.5)
                if close:
                    suggested.add((*error["loc"][:-1], close[0]))
    issues: list[SpecIssue] = []
    for error in errors:
        if error["type"] == "missing" and tuple(error["loc"]) in suggested:
            continue
        loc = (*prefix, *error["loc"])
        kind = error["type"]
        hint = ""
        if kind == "extra_forbidden":
            key = str(loc[-1])
            model = _model_at(loc[:-1], root)
            allowed = sorted(model.model_fields) if model else []
            message = f"unknown key `{key}`"
            hint = _did_you_mean(key, allowed) or (f"allowed keys: {', '.join(allowed)}" if allowed else "")
            where = positions.find(loc, at_key=True)
        elif kind == "missing":
            message = f"missing required key `{loc[-1]}`"
            where = positions.find(loc[:-1])
        elif kind == "union_tag_invalid":
            ctx = error.get("ctx", {})
            message = f"unknown signal kind {ctx.get('tag', '')}".strip()
            hint = f"kind is one of {ctx.get('expected_tags', '')}"
            where = positions.find((*loc, "kind"))
        elif kind == "union_tag_not_found":
            message = "the signal needs a `kind`"
            hint = "kind is one of 'count', 'ratio', 'measure', 'cardinality', 'change', 'absence'"
            where = positions.find(loc)
        elif kind == "literal_error" and loc == ("version",):
            message = f"unsupported spec version {error.get('input')!r}"
            hint = "this extalerts reads `version: 1`"
            where = positions.find(loc)
        else:
            message = str(error["msg"]).removeprefix("Value error, ")
            field_name = next((str(p) for p in reversed(loc) if isinstance(p, str) and p != "[key]"), "")
            if field_name and not message.startswith(field_name):
                message = f"{field_name}: {message}"
            # A whole-object problem (a model validator) points at the object's key.
            where = positions.find(loc, at_key="[key]" in loc or positions.is_mapping(loc))
        issues.append(SpecIssue(where, f"{label}{message}", hint))
    return issues


# --------------------------------------------------------------------------------------------- load


@dataclass
class _Parsed:
    path: Path
    spec: SpecFile | None
    positions: Positions
    rules: list[tuple[Rule | None, Any, int]]


@dataclass
class _Merged:
    defaults: Defaults = field(default_factory=lambda: Defaults())
    defaults_at: Location | None = None
    sources: dict[str, tuple[Source, Location]] = field(default_factory=dict)
    targets: dict[str, tuple[Target, Location]] = field(default_factory=dict)
    fields: dict[str, Any] = field(default_factory=dict)
    logpush: Logpush | None = None
    logpush_at: Positions | None = None
    #: (valid rule or None, the raw YAML of the rule, its positions, its index in the file)
    rules: list[tuple[Rule | None, Any, Positions, int]] = field(default_factory=list)


def load_spec(paths: Iterable[Path | str]) -> Spec:
    """Load and check every spec file under ``paths``; raise :class:`SpecError` listing all problems."""
    files = discover(Path(p) for p in paths)
    issues: list[SpecIssue] = []
    if not files:
        where = ", ".join(str(p) for p in paths) or "."
        raise SpecError([SpecIssue(Location(Path(where)), "no spec files found (*.yaml, *.yml)")])
    parsed = [item for path in files if (item := _parse_file(path, issues)) is not None]
    merged = _merge(parsed, issues)
    spec = _resolve(files, merged, issues)
    if issues:
        raise SpecError(issues)
    return spec


def _parse_file(path: Path, issues: list[SpecIssue]) -> _Parsed | None:
    """Validate one file: its sections as a whole, and each rule on its own so that one broken rule
    does not hide the problems of the others."""
    read = read_yaml(path, issues)
    if read is None:
        return None
    data, text = read
    if data is None:
        issues.append(SpecIssue(Location(path, 1, 1), "the file is empty", "start it with `version: 1`"))
        return None
    positions = Positions(path, text)
    if not isinstance(data, Mapping):
        issues.append(SpecIssue(Location(path, 1, 1), "a spec file is a mapping with `version: 1` at the top"))
        return None
    document = plain(data)
    raw_rules = document.pop("rules", [])
    spec: SpecFile | None = None
    try:
        spec = SpecFile.model_validate(document)
        _check_source_queries(spec, positions, issues)
    except ValidationError as exc:
        issues.extend(issues_from_validation(exc, positions))
        # The rest of the file still takes part in the cross-file checks, so that its targets,
        # sources and fields are neither reported unknown nor kept out of the duplicate checks.
        with contextlib.suppress(ValidationError):
            spec = SpecFile.model_validate(_without_invalid_parts(document, exc))
    rules: list[tuple[Rule | None, Any, int]] = []
    if not isinstance(raw_rules, list):
        issues.append(
            SpecIssue(positions.find(("rules",)), "`rules` is a list of rules", "start each rule with `- id:`")
        )
        raw_rules = []
    for index, raw in enumerate(raw_rules):
        label = f"rule `{raw['id']}`: " if isinstance(raw, dict) and isinstance(raw.get("id"), str) else ""
        try:
            rules.append((Rule.model_validate(raw), raw, index))
        except ValidationError as exc:
            issues.extend(issues_from_validation(exc, positions, ("rules", index), label))
            rules.append((None, raw, index))
    return _Parsed(path, spec, positions, rules)


def _check_source_queries(spec: SpecFile, positions: Positions, issues: list[SpecIssue]) -> None:
    """Each source's Datadog search, read as Datadog reads it: a broken one fails here, not at render."""
    from extalerts.render.datadog_query import check_search

    for name, source in spec.sources.items():
        for problem in check_search(source.datadog.query):
            where = positions.find(("sources", name, "datadog", "query"))
            message = f"source `{name}`: datadog.query: {problem}"
            issues.append(SpecIssue(where, message, "check its brackets and quotes"))


#: Sections that name their entries: a broken entry leaves the others of its section valid.
_NAMED_SECTIONS = ("sources", "targets", "fields")


def _without_invalid_parts(document: Mapping[str, Any], exc: ValidationError) -> dict[str, Any]:
    """``document`` less what ``exc`` found wrong: the broken entry of a named section, else the
    whole section (its problems are reported already)."""
    kept = dict(document)
    for error in exc.errors(include_url=False):
        loc = error["loc"]
        if not loc:
            return {"version": 1}
        section = loc[0]
        entries = kept.get(str(section))
        if section in _NAMED_SECTIONS and len(loc) > 1 and isinstance(entries, Mapping):
            kept[str(section)] = {name: value for name, value in entries.items() if name != loc[1]}
        else:
            kept.pop(str(section), None)
    kept["version"] = 1  # an unsupported version is reported; the rest is read as version 1
    return kept


def _merge(parsed: list[_Parsed], issues: list[SpecIssue]) -> _Merged:
    merged = _Merged()
    for item in parsed:
        spec, pos = item.spec, item.positions
        merged.rules.extend((rule, raw, pos, index) for rule, raw, index in item.rules)
        if spec is None:
            continue
        if spec.defaults is not None:
            here = pos.find(("defaults",), at_key=True)
            if merged.defaults_at is not None:
                issues.append(
                    SpecIssue(here, "`defaults` is set in more than one file", f"first set at {merged.defaults_at}")
                )
            else:
                merged.defaults, merged.defaults_at = spec.defaults, here
        if spec.logpush is not None:
            here = pos.find(("logpush",), at_key=True)
            if merged.logpush_at is not None:
                first = merged.logpush_at.find(("logpush",), at_key=True)
                issues.append(SpecIssue(here, "`logpush` is set in more than one file", f"first set at {first}"))
            else:
                merged.logpush, merged.logpush_at = spec.logpush, pos
        for section in ("sources", "targets", "fields"):
            table: dict[str, Any] = getattr(merged, section)
            for name, value in getattr(spec, section).items():
                here = pos.find((section, name), at_key=True)
                if name in table:
                    issues.append(
                        SpecIssue(here, f"{section[:-1]} `{name}` is defined twice", f"first at {table[name][1]}")
                    )
                else:
                    table[name] = (value, here)
    return merged


def _resolve(files: list[Path], merged: _Merged, issues: list[SpecIssue]) -> Spec:
    catalog = FieldCatalog(
        derived_field(name, value.key, _DERIVED_TYPES[value.type], value.description)
        for name, (value, _) in merged.fields.items()
    )
    sources = {name: value for name, (value, _) in merged.sources.items()}
    targets = {name: value for name, (value, _) in merged.targets.items()}
    defaults = merged.defaults
    if not sources:
        sources = {DEFAULT_SOURCE_NAME: Source()}
    default_source = defaults.source or (next(iter(sources)) if len(sources) == 1 else None)
    if defaults.source and defaults.source not in sources and merged.defaults_at:
        issues.append(
            SpecIssue(
                merged.defaults_at,
                f"defaults.source names an unknown source `{defaults.source}`",
                _did_you_mean(defaults.source, sources),
            )
        )

    seen: dict[str, tuple[Positions, tuple[str, int]]] = {}
    resolved: list[ResolvedRule] = []
    for rule, raw, pos, index in merged.rules:
        base = ("rules", index)
        # Ids are checked for every rule, one failing its own checks too: one pass finds everything.
        rule_id = rule.id if rule is not None else _raw_rule_id(raw)
        duplicate = rule_id in seen
        if duplicate:
            first_positions, first_base = seen[rule_id]
            first = first_positions.find((*first_base, "id"))
            issues.append(SpecIssue(pos.find((*base, "id")), f"rule id `{rule_id}` is used twice", f"first at {first}"))
        elif rule_id != "?":
            seen[rule_id] = (pos, base)
        if rule is None:
            # The rule failed its own checks; still look at the parts that are well formed.
            _RuleChecker(rule_id, pos, base, catalog, issues).check_parts(raw, targets)
            continue
        if duplicate:
            continue
        result = _RuleChecker(rule.id, pos, base, catalog, issues).check(
            rule, sources, targets, default_source, defaults
        )
        if result is not None:
            resolved.append(result)
    resolved.sort(key=lambda r: r.id)
    logpush = merged.logpush or Logpush()
    before = len(issues)
    filters = _check_logpush(logpush, merged.logpush_at, catalog, issues)
    # Only against well-formed jobs: a misspelt job field would otherwise also read as unshipped.
    if merged.logpush is not None and len(issues) == before:
        _check_rules_are_shipped(resolved, logpush, catalog, issues)
    target_locations = {name: where for name, (_, where) in merged.targets.items()}
    return Spec(
        files=tuple(files),
        defaults=defaults,
        sources=sources,
        targets=targets,
        catalog=catalog,
        rules=tuple(resolved),
        logpush=logpush,
        logpush_filters=filters,
        target_locations=target_locations,
        warnings=tuple(splunk_paging_issues(resolved, target_locations)),
    )


#: Levels at which a Splunk alert runs its actions (recovery sends nothing: Splunk keeps no state).
_SPLUNK_LEVELS = ("alert", "warning")


def splunk_pages(rule: ResolvedRule, level: str) -> list[tuple[str, Target]]:
    """The PagerDuty targets a rule's Splunk alert at ``level`` pages."""
    return [(name, t) for name, t in rule.targets if t.pagerduty is not None and level in t.levels]


def splunk_paging_issues(rules: Sequence[ResolvedRule], locations: Mapping[str, Location]) -> list[SpecIssue]:
    """What stops the Splunk alerts from paging: a PagerDuty target without the variable that holds its
    integration key, or one alert paging two services (a saved search has one PagerDuty action).
    Warnings, not errors: a spec used only with Datadog needs neither; `push --provider splunk` refuses."""
    keyless: dict[str, list[str]] = {}
    issues: list[SpecIssue] = []
    for rule in rules:
        for level in _SPLUNK_LEVELS:
            paged = splunk_pages(rule, level)
            for name, target in paged:
                assert target.pagerduty is not None
                if target.pagerduty.integration_key_env is None and rule.id not in keyless.setdefault(name, []):
                    keyless[name].append(rule.id)
            if len(paged) > 1:
                names = ", ".join(f"`{name}`" for name, _ in paged)
                issues.append(
                    SpecIssue(
                        rule.location,
                        f"rule `{rule.id}`: its Splunk {level} pages {names}, "
                        "but a Splunk alert has one PagerDuty action",
                        "route the rule to one PagerDuty target per level",
                    )
                )
    for name, rule_ids in sorted(keyless.items()):
        env = "PD_KEY_" + "".join(c if c.isalnum() else "_" for c in name.upper())
        issues.append(
            SpecIssue(
                locations.get(name, Location(Path("?"))),
                f"target `{name}`: no pagerduty.integration_key_env, so the Splunk alerts of "
                f"{', '.join(f'`{r}`' for r in rule_ids)} cannot page it (push --provider splunk refuses)",
                f"export the service's integration key and name the variable, e.g. integration_key_env: {env}",
            )
        )
    return issues


def _check_logpush(
    logpush: Logpush, positions: Positions | None, catalog: FieldCatalog, issues: list[SpecIssue]
) -> dict[str, str | None]:
    """Field names and filters of the Logpush jobs; returns each job's compiled filter string."""
    from extalerts.errors import CannotPushDownError
    from extalerts.filter.logpush import to_logpush, to_logpush_string

    filters: dict[str, str | None] = {}
    for name, job in logpush.jobs.items():
        assert positions is not None
        base = ("logpush", "jobs", name)
        label = f"logpush job `{name}`"
        for index, field_name in enumerate(job.fields or []):
            if field_name not in LOGPUSH_FIELDS:
                hint = _did_you_mean(field_name, LOGPUSH_FIELDS) or "Logpush ships top-level fields: " + ", ".join(
                    LOGPUSH_FIELDS
                )
                issues.append(
                    SpecIssue(positions.find((*base, "fields", index)), f"{label}: unknown field `{field_name}`", hint)
                )
        if "EventTimestampMs" not in job.shipped_fields:
            issues.append(
                SpecIssue(
                    positions.find((*base, "fields")),
                    f"{label}: EventTimestampMs must be shipped",
                    "every alert times events by it",
                )
            )
        filters[name] = None
        if job.filter is None:
            continue
        try:
            expr = parse(job.filter)
        except FilterSyntaxError as exc:
            issues.append(SpecIssue(positions.find((*base, "filter")), f"{label}: filter: {exc.message}", exc.hint))
            continue
        problems = check(expr, catalog)
        for problem in problems:
            issues.append(
                SpecIssue(positions.find((*base, "filter")), f"{label}: filter: {problem.message}", problem.hint)
            )
        if problems:
            continue
        try:
            filters[name] = to_logpush_string(to_logpush(expr, catalog))
        except CannotPushDownError as exc:
            issues.append(
                SpecIssue(
                    positions.find((*base, "filter")),
                    f"{label}: Logpush cannot apply this filter: {exc}",
                    "Logpush filters Outcome, ScriptName, EventType, Entrypoint, DispatchNamespace, ScriptTags "
                    "and the numbers",
                )
            )
    return filters


def logpush_field_of(field: Field) -> str:
    """The top-level Logpush field a catalog field is read from (derived fields live in Logs)."""
    return "Logs" if field.is_derived else field.paths[0][0]


def _check_rules_are_shipped(
    rules: Sequence[ResolvedRule], logpush: Logpush, catalog: FieldCatalog, issues: list[SpecIssue]
) -> None:
    """A provider that has Logpush jobs must receive every field its rules read."""
    for provider in ("datadog", "splunk"):
        jobs = [job for job in logpush.jobs.values() if job.provider == provider]
        if not jobs:
            continue  # not shipped by a job extalerts manages: `extalerts coverage` says so
        shipped = set().union(*(job.shipped_fields for job in jobs))
        for rule in rules:
            names = fields_of(rule.filter) + fields_of(rule.ratio_match) + list(rule.rule.group_by)
            signal_field = getattr(rule.rule.signal, "field", None)
            if signal_field:
                names.append(signal_field)
            missing = sorted({logpush_field_of(catalog[n]) for n in names} - shipped)
            if missing:
                issues.append(
                    SpecIssue(
                        rule.location,
                        f"rule `{rule.id}`: reads {', '.join(missing)}, which no Logpush job ships to {provider}",
                        f"add {', '.join(missing)} to the fields of a {provider} job",
                    )
                )


def _raw_rule_id(raw: Any) -> str:
    if isinstance(raw, Mapping) and isinstance(raw.get("id"), str):
        return str(raw["id"])
    return "?"


def _strings(value: Any) -> list[str] | None:
    if isinstance(value, list) and all(isinstance(v, str) for v in value):
        return list(value)
    return None


class _RuleChecker:
    """Cross-reference checks for one rule; every problem is appended to ``issues``."""

    def __init__(
        self,
        rule_id: str,
        positions: Positions,
        base: tuple[str | int, ...],
        catalog: FieldCatalog,
        issues: list[SpecIssue],
    ) -> None:
        self.rule_id = rule_id
        self.positions = positions
        self.base = base
        self.catalog = catalog
        self.issues = issues
        self.count_before = len(issues)

    def at(self, *loc: str | int) -> Location:
        return self.positions.find((*self.base, *loc))

    def add(self, location: Location, message: str, hint: str = "") -> None:
        self.issues.append(SpecIssue(location, f"rule `{self.rule_id}`: {message}", hint))

    def check_parts(self, raw: Any, targets: Mapping[str, Target]) -> None:
        """Checks for a rule that failed validation: whatever parts are well formed."""
        if not isinstance(raw, Mapping):
            return
        if isinstance(raw.get("filter"), str):
            self.parse_filter(raw["filter"], ("filter",))
        signal = raw.get("signal")
        if isinstance(signal, Mapping) and signal.get("kind") == "ratio" and isinstance(signal.get("match"), str):
            self.parse_filter(signal["match"], ("signal", "match"))
        # A list longer than the model allows is reported once, by the model; its items are not.
        notify = _strings(raw.get("notify")) or []
        if len(notify) <= MAX_NOTIFY:
            self.check_notify(notify, targets)
        group_by = _strings(raw.get("group_by")) or []
        if len(group_by) <= MAX_GROUP_BY:
            self.check_group_by(group_by)

    def check_notify(self, names: list[str], targets: Mapping[str, Target]) -> list[tuple[str, Target]]:
        chosen: list[tuple[str, Target]] = []
        for index, name in enumerate(names):
            if name in targets:
                chosen.append((name, targets[name]))
            else:
                hint = _did_you_mean(name, targets) or (
                    f"defined targets: {', '.join(sorted(targets))}" if targets else "define it under `targets`"
                )
                self.add(self.at("notify", index), f"unknown target `{name}`", hint)
        return chosen

    def check_group_by(self, names: list[str]) -> None:
        for index, name in enumerate(names):
            field_def = self.catalog.get(name)
            if field_def is None:
                self.add(self.at("group_by", index), f"unknown group_by field `{name}`", self.catalog.suggest(name))
            elif field_def.type is FieldType.STRING_LIST:
                self.add(self.at("group_by", index), f"cannot group by the list field `{name}`")
        if len(set(names)) != len(names):
            self.add(self.at("group_by"), "group_by lists a field twice")

    def check(
        self,
        rule: Rule,
        sources: Mapping[str, Source],
        targets: Mapping[str, Target],
        default_source: str | None,
        defaults: Defaults,
    ) -> ResolvedRule | None:
        source_name = rule.source or default_source
        if source_name is None:
            self.add(self.at("id"), "no source: set `source` or `defaults.source`", f"sources: {', '.join(sources)}")
        elif source_name not in sources:
            where = self.at("source") if rule.source else self.at("id")
            self.add(where, f"unknown source `{source_name}`", _did_you_mean(source_name, sources))
        chosen = self.check_notify(rule.notify, targets)
        rule_filter = self.parse_filter(rule.filter, ("filter",))
        ratio_match = None
        if isinstance(rule.signal, RatioSignal):
            ratio_match = self.parse_filter(rule.signal.match, ("signal", "match"))
        self.check_group_by(rule.group_by)
        self.check_signal_field(rule)
        self.check_window_and_thresholds(rule)
        self.check_overrides(rule, chosen)
        if self.count_before != len(self.issues) or source_name is None or source_name not in sources:
            return None
        tags = [*defaults.tags, *rule.tags]
        if defaults.service:
            tags.append(f"service:{defaults.service}")
        if defaults.env:
            tags.append(f"env:{defaults.env}")
        renotify = rule.renotify if rule.renotify is not None else defaults.renotify
        delay = rule.evaluation_delay
        if delay is None:
            delay = defaults.evaluation_delay if defaults.evaluation_delay is not None else DEFAULT_EVALUATION_DELAY
        return ResolvedRule(
            rule=rule,
            path=self.positions.path,
            locate=lambda: self.at("id"),
            source_name=source_name,
            source=sources[source_name],
            filter=rule_filter,
            ratio_match=ratio_match,
            evaluation_delay=delay,
            tags=tuple(sorted(set(tags))),
            targets=tuple(chosen),
            renotify=renotify,
            throttle=rule.throttle or renotify or 3600,
        )

    def parse_filter(self, text: str | None, loc: tuple[str, ...]) -> Expr | None:
        if text is None:
            return None
        try:
            expr = parse(text)
        except FilterSyntaxError as exc:
            self.add(self._offset(loc, exc.offset, text), f"filter: {exc.message}", exc.hint)
            return None
        problems: list[FilterFieldError] = check(expr, self.catalog)
        for problem in problems:
            self.add(self._offset(loc, problem.offset, text), f"filter: {problem.message}", problem.hint)
        return None if problems else expr

    def _is_quoted(self, loc: tuple[str, ...]) -> bool:
        node: Any = self.positions.root
        for part in (*self.base, *loc):
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return False
        return type(node).__name__ in ("DoubleQuotedScalarString", "SingleQuotedScalarString")

    def _offset(self, loc: tuple[str, ...], offset: int, text: str) -> Location:
        """Where character ``offset`` of the filter at ``loc`` is in the file.

        Exact for single-line scalars; a multi-line filter points at the start of its value.
        """
        start = self.at(*loc)
        if "\n" in text or not start.line:
            return start
        return Location(start.path, start.line, start.column + offset + (1 if self._is_quoted(loc) else 0))

    def check_signal_field(self, rule: Rule) -> None:
        signal = rule.signal
        signal_field: str | None = getattr(signal, "field", None)
        if signal_field is not None:
            field_def = self.catalog.get(signal_field)
            if field_def is None:
                self.add(
                    self.at("signal", "field"), f"unknown field `{signal_field}`", self.catalog.suggest(signal_field)
                )
            elif isinstance(signal, MeasureSignal) and not field_def.type.is_numeric:
                self.add(
                    self.at("signal", "field"),
                    f"`{signal_field}` is {field_def.type.value}; a measure needs a numeric field",
                )
            elif field_def.type is FieldType.STRING_LIST:
                self.add(self.at("signal", "field"), f"cannot count distinct values of the list field `{signal_field}`")
        if isinstance(signal, AbsenceSignal) and signal.expected and len(rule.group_by) != 1:
            self.add(self.at("signal", "expected"), "`expected` needs exactly one group_by field")

    def check_overrides(self, rule: Rule, targets: Sequence[tuple[str, Target]]) -> None:
        """Override keys are checked here, so `validate` catches a typo before anything renders."""
        splunk_settings = rule.overrides.splunk.settings
        if splunk_settings:
            from extalerts.render.splunk_keys import override_problems
            from extalerts.render.templates import conf_value

            values = {key: conf_value(value) for key, value in splunk_settings.items()}
            enabled = {target.kind for _, target in targets}
            for key, problem in override_problems(values, enabled, grouped=bool(rule.group_by)):
                self.add(self.at("overrides", "splunk", "settings", key), f"overrides.splunk: {problem}")
        datadog_options = rule.overrides.datadog.options
        if datadog_options:
            from datadog_api_client.v1.model.monitor_options import MonitorOptions

            known = set(MonitorOptions.openapi_types)
            read_only = set(getattr(MonitorOptions, "read_only_vars", set()))
            for key in datadog_options:
                if key not in known or key in read_only:
                    self.add(
                        self.at("overrides", "datadog", "options", key),
                        f"overrides.datadog: `{key}` is not a monitor option Datadog accepts",
                        _did_you_mean(key, known - read_only),
                    )

    def check_window_and_thresholds(self, rule: Rule) -> None:
        if rule.evaluation_delay is not None and rule.evaluation_delay > 86400:
            self.add(self.at("evaluation_delay"), "evaluation_delay is at most 1d")
        if rule.renotify is not None and rule.renotify % 60:
            self.add(self.at("renotify"), "renotify must be whole minutes")
        if isinstance(rule.signal, AbsenceSignal):
            if rule.thresholds is not None:
                self.add(
                    self.at("thresholds"),
                    "an absence rule takes no thresholds",
                    "it fires when no matching event arrives for the whole window",
                )
        elif rule.thresholds is None:
            self.add(self.at("id"), "missing `thresholds`", "e.g. thresholds: {critical: 100}")
