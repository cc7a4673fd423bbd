"""Render the spec into a Splunk app of scheduled alerts, plus each alert's REST payload.

Every rule becomes a saved search that Splunk lists under Alerts: scheduled, with a dispatch window
that lags by the evaluation delay, the threshold inside the SPL (``| where``), and the trigger
"number of events greater than 0". A warning threshold becomes a second alert routed to the
warning targets, whose search keeps only values outside the critical range, so that a value (or a
group) past critical notifies once, as critical, like Datadog's one status per group. The SPL for each
signal kind is a template in ``templates/splunk/spl/``.
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from extalerts.drill.view import DRILL_SOURCETYPE
from extalerts.errors import RenderError
from extalerts.fields import Field
from extalerts.filter import fields_of
from extalerts.filter.splunk import spl_string, spl_value, to_splunk
from extalerts.filter.splunk_terms import base_search_terms
from extalerts.render.conf import ConfSyntaxError, parse_conf
from extalerts.render.files import RenderedFile, canonical_json
from extalerts.render.splunk_keys import key_problem, rest_payload, value_problem
from extalerts.render.splunk_schedule import (
    ScanCost,
    cron_for,
    scan_cost,
    schedule_period_minutes,
    scheduling_settings,
)
from extalerts.render.templates import Templates, conf_value
from extalerts.spec.loader import ResolvedRule, Spec
from extalerts.spec.models import (
    AbsenceSignal,
    Aggregation,
    CardinalitySignal,
    ChangeSignal,
    Level,
    MeasureSignal,
    RatioSignal,
    Target,
    format_duration,
)

NAME_PREFIX = "extalerts - "
WARNING_SUFFIX = " - warning"
STRUCTURED_LINE = "_extalerts_line"
#: The structured line, as every provider and the engine read it: the first element of ``Logs`` whose
#: ``Level`` is ``log``; its ``Message`` strings joined with ``,``; read as a JSON object when it is one.
#: spath (Search Reference): a path is "one or more location steps, separated by periods ... an optional
#: index surrounded by curly brackets"; ``{}`` takes every element, a multivalue field (here each ``Logs``
#: element as its JSON text, then each ``Message`` string), and ``input=`` names the field to read.
#: Multivalue eval functions (Search Reference, docs.splunk.com/Documentation/Splunk/latest/SearchReference/
#: MultivalueEvalFunctions; paraphrased): mvfind gives the 0-based index of the first value matching a
#: regex, null when none does; mvindex the value at a 0-based index (null for a null index); mvjoin the
#: values joined with a delimiter. Only ``"Level":"log"`` outside a string can match the regex:
#: quotes inside a JSON string are escaped (``\"``). The last step keeps only text that opens an object,
#: so spath never reads a plain message (or XML, which it also parses).
_LOG_LEVEL = spl_string('"Level"\\s*:\\s*"log"')
_OPENS_OBJECT = spl_string("^\\s*[{]")
STRUCTURED_LINE_STEPS = (
    "spath output=_extalerts_logs path=Logs{}",
    f"eval _extalerts_log=mvindex(_extalerts_logs, mvfind(_extalerts_logs, {_LOG_LEVEL}))",
    "spath input=_extalerts_log output=_extalerts_message path=Message{}",
    f'eval {STRUCTURED_LINE}=mvjoin(_extalerts_message, ",")',
    f"eval {STRUCTURED_LINE}=if(match({STRUCTURED_LINE}, {_OPENS_OBJECT}), {STRUCTURED_LINE}, null())",
)

_STATS_FUNCTIONS = {
    Aggregation.AVG: "avg",
    Aggregation.MIN: "min",
    Aggregation.MAX: "max",
    Aggregation.SUM: "sum",
    Aggregation.MEDIAN: "median",
    Aggregation.P75: "perc75",
    Aggregation.P90: "perc90",
    Aggregation.P95: "perc95",
    Aggregation.P99: "perc99",
}
_WARNING_SEVERITY = 3
#: The operator that holds for a value on the quiet side of a threshold: what a warning search adds
#: to leave the critical range to the alert search.
_QUIET_SIDE = {">": "<=", ">=": "<", "<": ">=", "<=": ">"}
#: Major and minor of the app's version; the patch is the content hash (see app_release).
APP_VERSION_PREFIX = "1.0"


def saved_search_name(rule_id: str, level: Level = Level.ALERT) -> str:
    return NAME_PREFIX + rule_id + (WARNING_SUFFIX if level is Level.WARNING else "")


def _minutes(seconds: int) -> int:
    return math.ceil(seconds / 60)


def _relative(minutes: int) -> str:
    return f"-{minutes}m@m" if minutes else "@m"


@dataclass(frozen=True)
class Alert:
    """One scheduled alert: a rule at one level."""

    rule: ResolvedRule
    level: Level
    name: str
    settings: dict[str, str]


class SplunkRenderer:
    def __init__(self, spec: Spec, templates: Templates) -> None:
        self.spec = spec
        self.templates = templates

    # ----------------------------------------------------------------------------------- SPL

    def extraction(self, rule: ResolvedRule) -> list[str]:
        """``spath``/``eval`` steps that extract every field the rule reads, by path, once each."""
        r = rule.rule
        names = fields_of(rule.filter) + fields_of(rule.ratio_match) + list(r.group_by)
        signal_field = getattr(r.signal, "field", None)
        if signal_field:
            names.append(signal_field)
        fields = [self.spec.catalog[n] for n in dict.fromkeys(names)]
        steps: list[str] = []
        derived = [f for f in fields if f.is_derived]
        for field in fields:
            if not field.is_derived:
                steps.extend(_spath_steps(field))
        if derived:
            steps.extend(STRUCTURED_LINE_STEPS)
            for field in derived:
                steps.append(f"spath input={STRUCTURED_LINE} output={field.splunk_name} path={field.derived_key}")
        return steps

    def search(self, rule: ResolvedRule, operator: str, threshold: float, critical: float | None = None) -> str:
        """The alert's SPL: rows (one per group) whose value is past ``threshold``; with ``critical``
        (a warning search) only those not also past ``critical``, which the alert search reports."""
        r = rule.rule
        signal = r.signal
        source = rule.source.splunk
        # The rule's literal words go in the base search, so the index drops events before they are read
        # and parsed; the exact filter still follows as `| where` (extalerts.filter.splunk_terms).
        terms = base_search_terms(rule.filter, self.spec.catalog)
        context: dict[str, Any] = {
            "base": f"index={source.index} sourcetype={spl_string(source.sourcetype)}" + (f" {terms}" if terms else ""),
            "extract": self.extraction(rule),
            "where": to_splunk(rule.filter, self.spec.catalog) if rule.filter else None,
            "by": "".join(" " + self.spec.catalog[g].splunk_name for g in r.group_by),
            "groups": [self.spec.catalog[g].splunk_name for g in r.group_by],
            "condition": value_condition(operator, threshold, critical),
            "window_seconds": r.window,
        }
        match signal:
            case RatioSignal(min_events=min_events):
                assert rule.ratio_match is not None
                context["match"] = to_splunk(rule.ratio_match, self.spec.catalog)
                context["min_events"] = min_events
            case MeasureSignal(field=name, aggregation=aggregation):
                context["aggregate"] = f"{_STATS_FUNCTIONS[aggregation]}({self.spec.catalog[name].splunk_name})"
            case CardinalitySignal(field=name):
                context["field"] = self.spec.catalog[name].splunk_name
            case ChangeSignal(compare_to=shift):
                context["shift_seconds"] = shift
            case AbsenceSignal(expected=expected):
                context["expected"] = [spl_string(value) for value in expected]
        text = self.templates.render(f"splunk/spl/{signal.kind}.spl.j2", **context)
        lines = [line.strip() for line in text.strip().split("\n") if line.strip()]
        return "\n".join(lines)

    # ----------------------------------------------------------------------------------- alerts

    def time_range(self, rule: ResolvedRule) -> tuple[str, str]:
        r = rule.rule
        delay = _minutes(rule.evaluation_delay)
        span = _minutes(r.window)
        if isinstance(r.signal, ChangeSignal):
            span += _minutes(r.signal.compare_to)
        if isinstance(r.signal, AbsenceSignal) and r.group_by:
            span = max(span, _minutes(r.signal.lookback))
        return _relative(delay + span), _relative(delay)

    def schedule(self, rule: ResolvedRule) -> dict[str, str]:
        """``cron_schedule`` (once per window, see extalerts.render.splunk_schedule) and the keys that make
        a late run wait instead of being skipped."""
        period = schedule_period_minutes(rule.rule.window)
        return {"cron_schedule": cron_for(period), **scheduling_settings(period)}

    def scan_costs(self) -> list[ScanCost]:
        """What each alert reads per hour of scheduling, overrides included, in render order."""
        return [
            scan_cost(alert.name, rule.id, alert.settings) for rule in self.spec.rules for alert in self.alerts(rule)
        ]

    def alerts(self, rule: ResolvedRule) -> list[Alert]:
        r = rule.rule
        if r.thresholds is None:  # absence: no event for the window
            return [self.alert(rule, Level.ALERT, self.search(rule, "<", 1))]
        operator, critical, warning = r.thresholds.operator, r.thresholds.critical, r.thresholds.warning
        found = [self.alert(rule, Level.ALERT, self.search(rule, operator, critical))]
        if warning is not None:
            # Splunk keeps no state between runs, so recovery thresholds have no part here: the warning
            # search ends where the critical threshold (not critical_recovery) begins.
            found.append(self.alert(rule, Level.WARNING, self.search(rule, operator, warning, critical)))
        return found

    def alert(self, rule: ResolvedRule, level: Level, search: str) -> Alert:
        r = rule.rule
        name = saved_search_name(rule.id, level)
        earliest, latest = self.time_range(rule)
        groups = [self.spec.catalog[g].splunk_name for g in r.group_by]
        settings: dict[str, str] = {
            "description": self.description(rule, level),
            "search": search,
            "enableSched": "1",
            **self.schedule(rule),
            "dispatch.earliest_time": earliest,
            "dispatch.latest_time": latest,
            # savedsearches.conf.spec, quantity: "<counttype> <relation> <quantity> ... 'number of events
            # [is] greater than 10' sends an alert when the count of events is larger than by 10". The
            # threshold is in the SPL, so any row left triggers.
            "counttype": "number of events",
            "relation": "greater than",
            "quantity": "0",
            "alert.track": "1",
            "alert.severity": str(r.severity.splunk_severity if level is Level.ALERT else _WARNING_SEVERITY),
            # alert.digest_mode: "whether Splunk applies the alert actions to the entire result set or to
            # each individual result". Per result for groups: each group (one row) notifies on its own.
            "alert.digest_mode": "0" if groups else "1",
            # alert.suppress.period: "Honored if and only if 'alert.suppress = 1'". Each saved search
            # (alert and warning) is throttled on its own.
            "alert.suppress": "1",
            "alert.suppress.period": format_duration(rule.throttle),
        }
        if groups:
            # alert.suppress.fields: "List of fields to use when suppressing per-result alerts. This
            # field *must* be specified if the digest mode is disabled and suppression is enabled."
            settings["alert.suppress.fields"] = ",".join(groups)
        for target_name, target in rule.targets:
            if level in target.levels:
                settings.update(self.action(rule, target_name, target, level))
        for key, value in sorted(r.overrides.splunk.settings.items()):
            settings[key] = conf_value(value) if isinstance(value, bool) else str(value)
        settings.setdefault("disabled", "0")
        settings.setdefault("is_visible", "1")
        return Alert(rule, level, name, settings)

    def description(self, rule: ResolvedRule, level: Level) -> str:
        r = rule.rule
        parts = [r.title]
        if r.description:
            parts.append(r.description.strip())
        if r.runbook:
            parts.append(f"Runbook: {r.runbook}")
        note = f"extalerts rule {rule.id} ({level.value}); managed by extalerts: edit the spec, not this alert."
        if r.thresholds and (r.thresholds.critical_recovery is not None or r.thresholds.warning_recovery is not None):
            note += " Recovery thresholds do not apply in Splunk."
        parts.append(note)
        # .conf continuation lines lose their leading and trailing blanks when Splunk reads them; trim
        # them here so what is written reads back exactly.
        lines = (line.strip() for part in parts for line in part.splitlines())
        return "\n".join(line for line in lines if line)

    def action(self, rule: ResolvedRule, name: str, target: Target, level: Level) -> dict[str, str]:
        r = rule.rule
        label = "ALERT" if level is Level.ALERT else "WARNING"
        summary = f"[{label}] {r.title}: value $result.value$"
        if target.email is not None:
            return {
                "action.email": "1",
                "action.email.to": ",".join(target.email.to),
                "action.email.subject": summary,
                "action.email.include.results_link": "1",
                "action.email.sendresults": "1",
                "action.email.inline": "1",
            }
        if target.webhook is not None:
            return {"action.webhook": "1", "action.webhook.param.url": target.webhook.url}
        if target.slack is not None:
            channel = "#" + target.slack.channel.lstrip("#")
            message = summary + (f" (runbook: {r.runbook})" if r.runbook else "")
            return {
                "action.slack": "1",
                "action.slack.param.channel": channel,
                "action.slack.param.message": message,
                "action.slack.param.attachment": "alert_link",
            }
        assert target.pagerduty is not None
        settings = {"action.pagerduty": "1"}
        if target.pagerduty.splunk_integration_url:
            settings["action.pagerduty.param.integration_url_override"] = target.pagerduty.splunk_integration_url
        return settings

    # ----------------------------------------------------------------------------------- files

    def render(self) -> list[RenderedFile]:
        app = self.spec.splunk_app
        alerts = [alert for rule in self.spec.rules for alert in self.alerts(rule)]
        savedsearches = self.templates.render("splunk/savedsearches.conf.j2", alerts=alerts, app=app)
        check_savedsearches(savedsearches, alerts, f"splunk/{app}/default/savedsearches.conf")
        app_path = f"splunk/{app}/default/app.conf"
        content = [
            RenderedFile(f"splunk/{app}/default/savedsearches.conf", savedsearches),
            RenderedFile(
                f"splunk/{app}/default/props.conf",
                self._conf("splunk/props.conf.j2", "props.conf", sourcetypes=self.sourcetypes()),
            ),
            RenderedFile(f"splunk/{app}/metadata/default.meta", self._conf("splunk/default.meta.j2", "default.meta")),
            # app.conf itself counts too, with the version left out: a new label is a new release.
            RenderedFile(app_path, self.templates.render("splunk/app.conf.j2", app=app, version="", build=0)),
        ]
        version, build = app_release(content)
        files = [
            RenderedFile(app_path, self._conf("splunk/app.conf.j2", "app.conf", app=app, version=version, build=build)),
            *content[:-1],
        ]
        for alert in alerts:
            suffix = "" if alert.level is Level.ALERT else "--warning"
            payload = {
                "name": alert.name,
                "app": app,
                "owner": "nobody",
                "params": rest_payload(alert.settings),
                "acl": {"sharing": "app", "owner": "nobody", "perms.read": "*", "perms.write": "admin"},
            }
            files.append(
                RenderedFile(f"splunk/rest/{alert.rule.id}{suffix}.json", canonical_json(payload), alert.rule.id)
            )
        return files

    def sourcetypes(self) -> list[str]:
        # Drill events arrive under their own source type, parsed the same way (see extalerts.drill.view).
        return sorted({source.splunk.sourcetype for source in self.spec.sources.values()} | {DRILL_SOURCETYPE})

    def _conf(self, template: str, what: str, **context: Any) -> str:
        text = self.templates.render(template, **context)
        try:
            parse_conf(text)
        except ConfSyntaxError as exc:
            raise RenderError(what, [str(exc)]) from exc
        return text


def app_release(files: Iterable[RenderedFile]) -> tuple[str, int]:
    """The app's ``version`` and ``build``, from a hash of its files: the same content always gets the
    same pair and any change a new one, but for a one in 2**28 chance (app.conf.spec: "Every release
    must change both 'version' and 'build' settings"). The build is an integer from 1 to 2**28, which
    any 32-bit reader takes; the version is SemVer ``1.0.<build>``. Hashes are not ordered: a later
    release may get a lower number."""
    digest = hashlib.sha256()
    for file in sorted(files, key=lambda f: f.path):
        digest.update(file.path.encode() + b"\0" + file.content.encode() + b"\0")
    build = int(digest.hexdigest()[:7], 16) + 1
    return f"{APP_VERSION_PREFIX}.{build}", build


def value_condition(operator: str, threshold: float, critical: float | None = None) -> str:
    """The ``where`` condition on a search's ``value``: past ``threshold`` and, for a warning search
    (``critical`` given), not past ``critical``. A group's row is in at most one of the two searches."""
    condition = f"value {operator} {spl_value(threshold)}"
    if critical is not None:
        condition += f" AND value {_QUIET_SIDE[operator]} {spl_value(critical)}"
    return condition


def _spath_steps(field: Field) -> list[str]:
    paths = field.splunk_paths()
    if len(paths) == 1:
        return [f"spath output={field.splunk_name} path={paths[0]}"]
    parts = [f"{field.splunk_name}_{index}" for index in range(1, len(paths) + 1)]
    steps = [f"spath output={part} path={path}" for part, path in zip(parts, paths, strict=True)]
    steps.append(f"eval {field.splunk_name}=mvappend({', '.join(parts)})")
    return steps


# --------------------------------------------------------------------------------------------- checks


_SPL_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_SPL_BRACKETS = re.compile(r"[()\[\]]")


def check_spl(search: str) -> list[str]:
    """Shallow well-formedness of SPL: terminated strings, balanced parentheses and brackets, no empty pipe."""
    problems: list[str] = []
    code = _SPL_STRING.sub('""', search)
    if code.count('"') % 2:
        problems.append("unterminated string")
        code = code[: code.rfind('"')]
    depth = {"(": 0, "[": 0}
    closing = {")": "(", "]": "["}
    for char in _SPL_BRACKETS.findall(code):
        if char in depth:
            depth[char] += 1
            continue
        depth[closing[char]] -= 1
        if depth[closing[char]] < 0:
            problems.append(f"unbalanced {char!r}")
            break
    if any(count > 0 for count in depth.values()):
        problems.append("unclosed parenthesis or bracket")
    if re.search(r"\|\s*(\||$)", code):
        problems.append("empty pipeline stage")
    return problems


def check_savedsearches(text: str, alerts: list[Alert], name: str) -> None:
    """Parse the written file back and compare it with what was meant, key by key."""
    try:
        stanzas = parse_conf(text)
    except ConfSyntaxError as exc:
        raise RenderError(name, [str(exc)]) from exc
    problems: list[str] = []
    written = {stanza.name: stanza.as_dict() for stanza in stanzas}
    for alert in alerts:
        got = written.get(alert.name)
        if got is None:
            problems.append(f"[{alert.name}] is missing")
            continue
        if got != alert.settings:
            differing = sorted(k for k in set(got) | set(alert.settings) if got.get(k) != alert.settings.get(k))
            problems.append(f"[{alert.name}] does not read back as written: {', '.join(differing)}")
        for key, value in got.items():
            problem = key_problem(key) or value_problem(key, value)
            if problem:
                problems.append(f"[{alert.name}] {problem}")
        if (
            got.get("alert.digest_mode") == "0"
            and got.get("alert.suppress") == "1"
            and not got.get("alert.suppress.fields")
        ):
            problems.append(f"[{alert.name}] digest mode off with suppression on needs alert.suppress.fields")
        problems.extend(f"[{alert.name}] search: {p}" for p in check_spl(got.get("search", "")))
    extra = set(written) - {a.name for a in alerts}
    problems.extend(f"unexpected stanza [{s}]" for s in sorted(extra))
    if problems:
        raise RenderError(name, problems)
