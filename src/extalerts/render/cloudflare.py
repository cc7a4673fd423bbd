"""Render Workers Observability alert recipes: for each rule Option A can carry, the alerts as JSON
(to review in a pull request) and as numbered dashboard steps (to enter them).

:mod:`extalerts.observability_alerts` decides what each alert is; the templates in
``templates/cloudflare/`` lay it out. The JSON is parsed back and written canonically, so a
template that breaks JSON fails here rather than in review.
"""

from __future__ import annotations

import json
from typing import Any

from extalerts.errors import RenderError
from extalerts.observability_alerts import AlertVerdict, Assessment, Channel, assess
from extalerts.render.files import RenderedFile, canonical_json
from extalerts.render.templates import Templates
from extalerts.spec.loader import ResolvedRule, Spec

RECIPES_DIR = "cloudflare/observability-alerts"


class CloudflareRenderer:
    def __init__(self, spec: Spec, templates: Templates) -> None:
        self.spec = spec
        self.templates = templates

    def render(self) -> list[RenderedFile]:
        files: list[RenderedFile] = []
        for rule in self.spec.rules:
            assessment = assess(rule, self.spec.catalog)
            if assessment.verdict is AlertVerdict.NO or not assessment.alerts:
                continue
            context = self._context(rule, assessment)
            path = f"{RECIPES_DIR}/{rule.id}.json"
            text = self.templates.render("cloudflare/observability-alert.json.j2", **context)
            try:
                document = json.loads(text)
            except json.JSONDecodeError as exc:
                raise RenderError(path, [f"the template produced invalid JSON: {exc}"]) from exc
            files.append(RenderedFile(path, canonical_json(document), rule.id))
            steps = self.templates.render("cloudflare/observability-alert.md.j2", **context)
            files.append(RenderedFile(f"{RECIPES_DIR}/{rule.id}.md", steps, rule.id))
        return files

    @staticmethod
    def _context(rule: ResolvedRule, assessment: Assessment) -> dict[str, Any]:
        destinations: dict[tuple[str, str], Channel] = {}
        for alert in assessment.alerts:
            for channel in alert.channels:
                if channel.type != "Email":
                    destinations.setdefault((channel.type, channel.value), channel)
        return {
            "rule_id": rule.id,
            "title": rule.rule.title,
            "verdict": assessment.verdict.value,
            "head_sampling_rate": rule.source.cloudflare.head_sampling_rate,
            "alerts": assessment.alerts,
            "lost": assessment.lost,
            "confirm": assessment.confirm,
            "channels_needing_destinations": list(destinations.values()),
            "keys": {
                name: {"key": key.key, "event": key.event.value, "documented": key.documented, "source": key.source}
                for name, key in assessment.fields.items()
            },
        }
