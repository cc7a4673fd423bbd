"""The drill's temporary copy of a rule: scoped to one drill id, fed by drill events only, notifying
only the drill target.

Drill events carry the drill id in the structured log line (key ``extalerts_drill_id``) and arrive
with their own origin — Datadog ``service:extalerts-drill``, Splunk sourcetype
``cloudflare:workers:extalerts-drill`` — which no production rule selects, so production monitors
never see them and nobody is paged. The copy reads that origin and requires the drill id; everything
else (filter, signal, window, thresholds, delay, grouping) is the rule's own, rendered by the same
renderer as production.
"""

from __future__ import annotations

import dataclasses
import re

from extalerts.fields import FieldCatalog, FieldType, derived_field
from extalerts.filter.ast import Op, Predicate, conjunction
from extalerts.spec.loader import ResolvedRule, Spec
from extalerts.spec.models import AbsenceSignal, DatadogSource, Level, Source, SplunkSource, Target, WebhookTarget

DRILL_FIELD = "extalerts_drill_id"
DRILL_SERVICE = "extalerts-drill"
DRILL_DATADOG_QUERY = f"service:{DRILL_SERVICE}"
DRILL_SOURCETYPE = "cloudflare:workers:extalerts-drill"
DRILL_MANAGED_TAG = "managed-by:extalerts-drill"
DRILL_TAG_PREFIX = "extalerts-drill:"
DRILL_TARGET = "extalerts-drill"
#: Splunk names of drill copies; production alerts are named "extalerts - …", so plans never see these.
DRILL_SPLUNK_PREFIX = "extalerts-drill - "
_DRILL_RULE_ID = re.compile(r"^(?P<rule>[a-z][a-z0-9-]*)-drill-(?P<drill>[a-f0-9]{8})$")


def drill_rule_id(rule_id: str, drill_id: str) -> str:
    return f"{rule_id}-drill-{drill_id}"


def parse_drill_rule_id(text: str) -> tuple[str, str] | None:
    """``(rule id, drill id)`` of a drill copy's rule id, or None for a production rule id."""
    match = _DRILL_RULE_ID.match(text)
    return (match["rule"], match["drill"]) if match else None


def drill_target(webhook_url: str | None) -> Target:
    """Datadog ``@webhook-extalerts-drill``; Splunk's webhook action to ``webhook_url``."""
    url = webhook_url or "https://drill-target.invalid/extalerts"
    return Target(
        description="extalerts drill target",
        levels=[Level.ALERT, Level.WARNING, Level.RECOVERY],
        webhook=WebhookTarget(name=DRILL_TARGET, url=url),
    )


@dataclasses.dataclass(frozen=True)
class DrillView:
    """A spec holding only the drill copy of one rule."""

    spec: Spec
    rule: ResolvedRule
    original: ResolvedRule
    drill_id: str


def drill_catalog(spec: Spec) -> FieldCatalog:
    field = derived_field(DRILL_FIELD, DRILL_FIELD, FieldType.STRING, "Drill id (extalerts drill events only)")
    return FieldCatalog([*spec.catalog.derived, field])


def drill_view(spec: Spec, rule_id: str, drill_id: str, webhook_url: str | None = None) -> DrillView:
    original = spec.rule(rule_id)
    source = Source(
        description="extalerts drill events",
        datadog=DatadogSource(index=original.source.datadog.index, query=DRILL_DATADOG_QUERY),
        splunk=SplunkSource(index=original.source.splunk.index, sourcetype=DRILL_SOURCETYPE),
    )
    target = drill_target(webhook_url)
    scope = Predicate(DRILL_FIELD, Op.EQ, drill_id)
    copy_id = drill_rule_id(rule_id, drill_id)
    signal = original.rule.signal
    if isinstance(signal, AbsenceSignal) and signal.expected:
        # The copy sees drill events only: a production group it "expects" would always be silent.
        signal = signal.model_copy(update={"expected": []})
    model = original.rule.model_copy(
        update={
            "signal": signal,
            "id": copy_id,
            "title": f"[drill {drill_id}] {original.rule.title}",
            "notify": [DRILL_TARGET],
            "renotify": None,
        }
    )
    rule = dataclasses.replace(
        original,
        rule=model,
        source_name=DRILL_SERVICE,
        source=source,
        filter=conjunction(original.filter, scope),
        tags=tuple(sorted({*original.tags, f"{DRILL_TAG_PREFIX}{drill_id}"})),
        targets=((DRILL_TARGET, target),),
        renotify=None,
    )
    view_spec = dataclasses.replace(
        spec,
        sources={DRILL_SERVICE: source},
        targets={DRILL_TARGET: target},
        catalog=drill_catalog(spec),
        rules=(rule,),
    )
    return DrillView(view_spec, rule, original, drill_id)
