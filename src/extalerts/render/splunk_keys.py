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
