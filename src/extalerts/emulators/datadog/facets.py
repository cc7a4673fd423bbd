"""Log facets and measures: which attributes numeric search and numeric aggregation can use.

Datadog has no public API for log facets (they are created in the Log Explorer), so the emulator
is told them: ``extalerts emulator datadog --facet @Event.Response.Status:integer`` (repeatable;
``:measure`` after the type makes it a measure), and the sandbox creates those the rendered
``facets.json`` lists, as the README's "Datadog setup" tells a user to.

Rules, each from the docs (``logs/explorer/search_syntax.md``, ``logs/explorer/facets.md``):

* "In order to search on a numerical attribute, first add it as a facet. You can then use numerical
  operators (<,>, <=, or >=) to perform a search on numerical facets." → a numeric comparison or
  range matches only through a numeric facet (a dimension of integer type or a measure); without
  one it matches nothing (the docs do not say what happens; the conservative reading).
* Qualitative facets "can have a string or numerical (integer) type … using integer types on a
  dimension enables range filtering".
* Measures are used "To aggregate values" and "To range filter"; they are "(long) integer or
  double". → ``avg``/``max``/``pcXX``/… on an attribute without a measure yields no value (the docs
  are silent; conservative reading).
* "It is not required to define a facet to search on attributes and tags." → term, wildcard and
  group-by use the attribute itself; cardinality ("Monitor over a facet or an attribute … Any
  attribute can be used in a monitor") needs no facet either.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from extalerts.errors import ConfigError

FACET_TYPES = ("string", "integer", "double")


@dataclass(frozen=True)
class Facet:
    """One facet: its attribute path (``@a.b`` or a reserved attribute), type and whether it is a measure."""

    path: str
    type: str
    measure: bool = False

    @property
    def numeric(self) -> bool:
        return self.type in ("integer", "double")

    def spec(self) -> str:
        return f"{self.path}:{self.type}" + (":measure" if self.measure else "")


def parse_facet(text: str) -> Facet:
    """``@Event.Response.Status:integer`` or ``@WallTimeMs:double:measure`` as a :class:`Facet`."""
    path, _, rest = text.partition(":")
    kind, _, flag = rest.partition(":")
    if not path or kind not in FACET_TYPES or flag not in ("", "measure"):
        raise ConfigError(
            f"facet {text!r} is not PATH:TYPE[:measure] (TYPE: {', '.join(FACET_TYPES)}); "
            "e.g. --facet @Event.Response.Status:integer or --facet @WallTimeMs:integer:measure"
        )
    measure = flag == "measure"
    if measure and kind == "string":
        # "Measures … are (long) integer or double" (facets.md).
        raise ConfigError(f"facet {text!r}: a measure is an integer or a double, not a string")
    return Facet(path if path.startswith("@") or "." not in path else "@" + path, kind, measure)


class FacetRegistry:
    """The facets the emulated org has, by attribute path (without the leading ``@``)."""

    def __init__(self, facets: Iterable[Facet] = ()) -> None:
        self._facets: dict[str, Facet] = {}
        for facet in facets:
            self.add(facet)

    def add(self, facet: Facet) -> None:
        self._facets[facet.path.removeprefix("@")] = facet

    def remove(self, path: str) -> None:
        self._facets.pop(path.removeprefix("@"), None)

    def get(self, path: str) -> Facet | None:
        return self._facets.get(path.removeprefix("@"))

    def numeric(self, path: str) -> bool:
        """Whether numeric comparisons and ranges work on ``path``."""
        facet = self.get(path)
        return facet is not None and (facet.numeric or facet.measure)

    def measure(self, path: str) -> bool:
        """Whether numeric aggregations (avg, max, pcXX, …) work on ``path``."""
        facet = self.get(path)
        return facet is not None and facet.measure

    def __iter__(self) -> Any:
        return iter(sorted(self._facets.values(), key=lambda f: f.path))

    def __len__(self) -> int:
        return len(self._facets)


def facets_from_document(document: Mapping[str, Any], where: str = "facets.json") -> list[Facet]:
    """The facets a rendered ``facets.json`` lists (``{"facets": [{"path", "type", "measure", …}]}``)."""
    items = document.get("facets")
    if not isinstance(items, list):
        raise ConfigError(f'{where}: expected {{"facets": [...]}}')
    facets: list[Facet] = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping) or item.get("type") not in FACET_TYPES or not item.get("path"):
            raise ConfigError(f"{where}: facets[{index}] needs a path and a type ({', '.join(FACET_TYPES)})")
        facets.append(Facet(str(item["path"]), str(item["type"]), bool(item.get("measure", False))))
    return facets


def read_facets_file(path: Path) -> list[Facet]:
    try:
        document = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{path}: cannot read the facets: {exc}") from exc
    if not isinstance(document, Mapping):
        raise ConfigError(f'{path}: expected {{"facets": [...]}}')
    return facets_from_document(document, str(path))
