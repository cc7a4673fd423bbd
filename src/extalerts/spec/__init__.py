"""The rule spec: strict models of the YAML files and the loader that checks and merges them."""

from extalerts.spec.loader import ResolvedRule, Spec, discover, load_spec
from extalerts.spec.models import SPEC_VERSION, Rule, SpecFile, json_schema

__all__ = ["SPEC_VERSION", "ResolvedRule", "Rule", "Spec", "SpecFile", "discover", "json_schema", "load_spec"]
