"""Render a checked spec into provider documents (Datadog JSON, a Splunk app, Cloudflare Workers
Observability alert recipes) as values."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from pathlib import Path

from extalerts.render.files import RenderedFile, stale_files, write_files
from extalerts.render.templates import Templates
from extalerts.spec.loader import Spec


def _datadog(spec: Spec, templates: Templates) -> list[RenderedFile]:
    from extalerts.render.datadog import DatadogRenderer

    return DatadogRenderer(spec, templates).render()


def _splunk(spec: Spec, templates: Templates) -> list[RenderedFile]:
    from extalerts.render.splunk import SplunkRenderer

    return SplunkRenderer(spec, templates).render()


def _cloudflare(spec: Spec, templates: Templates) -> list[RenderedFile]:
    from extalerts.render.cloudflare import CloudflareRenderer

    return CloudflareRenderer(spec, templates).render()


#: Renderers by provider name; each owns one top-level directory of the output.
RENDERERS: dict[str, Callable[[Spec, Templates], list[RenderedFile]]] = {
    "datadog": _datadog,
    "splunk": _splunk,
    "cloudflare": _cloudflare,
}


def render(spec: Spec, providers: Iterable[str], templates_dir: Path | None = None) -> list[RenderedFile]:
    """Every file the given providers render from ``spec``, sorted by path."""
    templates = Templates(templates_dir)
    files: list[RenderedFile] = []
    for name in providers:
        files.extend(RENDERERS[name](spec, templates))
    return sorted(files, key=lambda f: f.path)


__all__ = ["RENDERERS", "RenderedFile", "Templates", "render", "stale_files", "write_files"]
