"""The Splunk emulator against savedsearches.conf.spec (``make contracts``): the arguments it accepts and the
server-side defaults it echoes are the published spec's, read in place from ../shared/contracts.
"""

from __future__ import annotations

import re

from extalerts.emulators.splunk import CONF_NAMES, DEFAULTS, REST_NAMES, SAVEDSEARCH_ARGUMENTS
from tests.contracts.conftest import contract


def spec_settings() -> dict[str, str]:
    """Each setting of savedsearches.conf.spec (above its deprecated ones) with its ``* Default:`` text."""
    text = contract("splunk-9.2", "savedsearches.conf.spec").read_text().split("# Deprecated settings")[0]
    settings: dict[str, str] = {}
    key = ""
    for line in text.splitlines():
        setting = re.match(r"^([A-Za-z_][\w.<>]*)\s*=", line)
        if setting:
            key = setting.group(1)
            settings.setdefault(key, "")
        elif key and line.startswith("* Default:") and not settings[key]:
            settings[key] = line.removeprefix("* Default:").strip()
    return settings


def spec_default(text: str) -> str:
    if not text or text.startswith(("empty string", "No default")):
        return ""
    token = text.split()[0].rstrip(".").strip("'")
    return {"true": "1", "false": "0"}.get(token, token)


def test_every_spec_setting_is_an_argument_under_its_rest_name() -> None:
    settings = [key for key in spec_settings() if not key.startswith(("action.", "display.")) and "<" not in key]
    assert len(settings) > 60
    missing = [key for key in settings if REST_NAMES.get(key, key) not in SAVEDSEARCH_ARGUMENTS]
    assert missing == []


def test_defaults_echoed_on_read_are_the_specs() -> None:
    settings = spec_settings()
    for rest_name, value in DEFAULTS.items():
        conf_name = CONF_NAMES.get(rest_name, rest_name)
        assert conf_name in settings, conf_name
        assert spec_default(settings[conf_name]) == value, conf_name
