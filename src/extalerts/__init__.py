"""extalerts: alerting-as-code for Cloudflare Workers logs in Datadog and Splunk.

The library is the product; the ``extalerts`` command is a thin shell over it::

    from extalerts import load_spec, render
    spec = load_spec(["monitors"])
    files = render(spec, ["datadog", "splunk"])
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from extalerts.render import render
    from extalerts.spec import load_spec

__all__ = ["__version__", "load_spec", "render"]


def __getattr__(name: str) -> Any:
    # Lazy, so that `import extalerts` (and so `extalerts --help`) stays fast.
    if name == "load_spec":
        from extalerts.spec import load_spec

        return load_spec
    if name == "render":
        from extalerts.render import render

        return render
    raise AttributeError(name)
