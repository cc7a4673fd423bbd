"""The ``savedsearches.conf`` keys extalerts writes or lets a rule override, and their REST names.

Every key here is one Splunk documents (``savedsearches.conf.spec`` and, for action parameters,
``alert_actions.conf.spec`` or the action app's own spec); the test suite checks this list against
the published spec files, so it cannot drift into undocumented keys.
"""

from __future__ import annotations

import re

SAVEDSEARCH_KEYS: frozenset[str] = frozenset(
    {
        "search",
        "description",
        "disabled",
        "is_visible",
        "enableSched",
        "cron_schedule",
        "allow_skew",
        "realtime_schedule",
        "schedule_window",
        "schedule_priority",
        "max_concurrent",
        "counttype",
        "relation",
        "quantity",
        "alert_condition",
        "dispatch.earliest_time",
        "dispatch.latest_time",
        "dispatch.ttl",
        "dispatch.max_count",
        "request.ui_dispatch_app",
        "alert.track",
        "alert.severity",
        "alert.expires",
        "alert.suppress",
        "alert.suppress.period",
        "alert.suppress.fields",
        "alert.suppress.group_name",
        "alert.digest_mode",
    }
)

#: Parameters each alert action takes, as ``action.<name>.<parameter>``.
ACTION_PARAMETERS: dict[str, frozenset[str]] = {
    "email": frozenset(
        {
            "to",
            "cc",
            "bcc",
            "from",
            "subject",
            "format",
            "inline",
            "sendresults",
            "sendcsv",
            "sendpdf",
            "include.results_link",
            "include.search",
            "include.trigger",
            "include.trigger_time",
            "include.view_link",
            "maxresults",
            "message.alert",
        }
    ),
    # Splunk Enterprise's webhook alert action.
    "webhook": frozenset({"param.url"}),
    # The Slack Alerts app (slack_alerts).
    "slack": frozenset({"param.channel", "param.message", "param.attachment", "param.fields"}),
    # The PagerDuty app (pagerduty_incidents).
    "pagerduty": frozenset({"param.integration_url_override", "param.integration_key_override"}),
}

#: ``.conf`` name → REST parameter name, where they differ.
REST_NAMES: dict[str, str] = {
    "enableSched": "is_scheduled",
    "counttype": "alert_type",
    "relation": "alert_comparator",
    "quantity": "alert_threshold",
}

_ACTION = re.compile(r"^action\.([a-z_]+)(?:\.(.+))?$")

#: Keys that make every rendered search a tracked, scheduled alert with its threshold in the SPL;
#: a rule cannot override them (that would turn the alert into a report, or change what it means).
PROTECTED_KEYS: frozenset[str] = frozenset(
    {"search", "description", "enableSched", "counttype", "relation", "quantity", "alert_condition", "alert.track"}
)
#: Parameters that hold secrets: never in the spec or a rendered file; `push` sets them from the environment.
SECRET_KEYS: frozenset[str] = frozenset(
    {"action.pagerduty.param.integration_key_override", "action.pagerduty.param.integration_url_override"}
)
_BOOLEAN = re.compile(r"^(0|1|true|false)$", re.IGNORECASE)
_CRON_FIELD = re.compile(r"^[0-9*/,-]+$")
_TIME_SPECIFIER = re.compile(r"^[0-9]+[smhd]?$")
_RELATIVE_TIME = re.compile(r"^(now|[-+]?[0-9]*[smhdwqy]?(@[a-z0-9]+)?|@[a-z0-9]+|rt.*)$")
_BOOLEAN_KEYS = frozenset(
    {"disabled", "is_visible", "realtime_schedule", "alert.suppress", "alert.digest_mode", "alert.track"}
)


def _is_true(value: str) -> bool:
    return value.lower() in ("1", "true")


def value_problem(key: str, value: str) -> str:
    """Why ``value`` is not valid for ``key`` ("" when it is, or when we do not check that key)."""
    if key in _BOOLEAN_KEYS or (key.startswith("action.") and key.count(".") == 1):
        return "" if _BOOLEAN.match(value) else f"{key} is a boolean (0 or 1), not {value!r}"
    if key == "alert.severity":
        return "" if value.isdigit() and 1 <= int(value) <= 6 else f"alert.severity is 1-6, not {value!r}"
    if key == "cron_schedule":
        fields = value.split()
        if len(fields) != 5 or not all(_CRON_FIELD.match(f) for f in fields):
            return f"cron_schedule takes five numeric cron fields (no names), not {value!r}"
    if key == "alert.suppress.period" and not _TIME_SPECIFIER.match(value):
        return f"alert.suppress.period is a number with s, m, h or d, not {value!r}"
    if key in ("dispatch.earliest_time", "dispatch.latest_time") and not _RELATIVE_TIME.match(value):
        return f"{key} is a relative time such as -10m@m, not {value!r}"
    if key == "schedule_window" and not (value == "auto" or value.isdigit()):
        return f"schedule_window is minutes or auto, not {value!r}"
    return ""


def override_problems(overrides: dict[str, str], enabled_actions: set[str], grouped: bool) -> list[tuple[str, str]]:
    """Problems with a rule's Splunk overrides, as (key, message), given the actions its targets enable."""
    problems: list[tuple[str, str]] = []
    actions = set(enabled_actions)
    for key, value in overrides.items():
        match = _ACTION.match(key)
        if match and match.group(2) is None:
            if _is_true(value):
                actions.add(match.group(1))
            else:
                actions.discard(match.group(1))
    for key, value in overrides.items():
        problem = key_problem(key) or value_problem(key, value)
        if not problem and key in PROTECTED_KEYS:
            problem = f"{key} is set by extalerts and cannot be overridden"
        if not problem and key in SECRET_KEYS:
            problem = (
                f"{key} holds a secret; name the variable holding it in the target's pagerduty.integration_key_env"
            )
        match = _ACTION.match(key)
        if not problem and match and match.group(2) is not None and match.group(1) not in actions:
            problem = f"{key} needs the {match.group(1)} action, which this rule does not enable"
        if problem:
            problems.append((key, problem))
    digest = overrides.get("alert.digest_mode", "1")
    suppress = overrides.get("alert.suppress", "1")
    if not _is_true(digest) and _is_true(suppress) and not grouped and "alert.suppress.fields" not in overrides:
        problems.append(
            ("alert.digest_mode", "with digest mode off and suppression on, Splunk needs alert.suppress.fields")
        )
    return problems


def key_problem(key: str) -> str:
    """Why ``key`` is not a documented ``savedsearches.conf`` key extalerts may write ("" when it is)."""
    if key in SAVEDSEARCH_KEYS:
        return ""
    match = _ACTION.match(key)
    if match:
        action, parameter = match.groups()
        if action not in ACTION_PARAMETERS:
            return f"unknown alert action {action!r}; known: {', '.join(sorted(ACTION_PARAMETERS))}"
        if parameter is None or parameter in ACTION_PARAMETERS[action]:
            return ""
        return f"action {action!r} has no parameter {parameter!r}"
    return f"{key!r} is not a savedsearches.conf key extalerts writes"


def rest_payload(settings: dict[str, str]) -> dict[str, str]:
    """The REST form of a stanza: renamed trigger keys, and enabled actions listed in ``actions``.

    ``action.<name>`` itself is read-only over REST; the enabled actions go in ``actions``.
    """
    payload: dict[str, str] = {}
    actions: list[str] = []
    for key, value in settings.items():
        match = _ACTION.match(key)
        if match and match.group(2) is None:
            if value == "1":
                actions.append(match.group(1))
            continue
        payload[REST_NAMES.get(key, key)] = value
    payload["actions"] = ",".join(actions)
    return payload
