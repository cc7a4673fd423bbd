"""The Splunk emulator, driven by the real splunk-sdk over HTTP the way the Splunk provider will drive splunkd.

Where the emulator claims to follow savedsearches.conf.spec (accepted arguments, server-side defaults),
tests/contracts/test_splunk_emulator_spec.py compares it with the published spec (``make contracts``).
"""

from __future__ import annotations

import gzip
import http.client
import json
import re
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
from splunklib import binding, client

from extalerts.emulators.base import Faults
from extalerts.emulators.splunk import REST_NAMES, SAVEDSEARCH_ARGUMENTS, SplunkEmulator
from extalerts.render import splunk_keys
from extalerts.render.conf import parse_conf
from tests.conftest import REPO

RENDERED = REPO / "rendered" / "splunk"
APP = "extalerts_workers"
CREDENTIALS = {
    "token": "emulator-bearer-token",
    "username": "admin",
    "password": "emulator-password",
    "hec_token": "0f6a3c1e-7c2b-4a8e-9a51-2b7f6d1c9e30",
}
TOKEN, USERNAME, PASSWORD, HEC_TOKEN = CREDENTIALS.values()


def rest_payload(name: str) -> dict[str, Any]:
    payload: dict[str, Any] = json.loads((RENDERED / "rest" / f"{name}.json").read_text())
    return payload


def create(svc: client.Service, payload: dict[str, Any]) -> client.SavedSearch:
    params = dict(payload["params"])
    search = params.pop("search")
    return svc.saved_searches.create(payload["name"], search, **params)


@pytest.fixture
def emulator() -> Iterator[SplunkEmulator]:
    with SplunkEmulator(token=TOKEN, username=USERNAME, password=PASSWORD, hec_token=HEC_TOKEN) as running:
        yield running


def connect(emulator: SplunkEmulator, **overrides: Any) -> client.Service:
    settings: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": emulator.port,
        "scheme": "http",
        "splunkToken": TOKEN,
        "owner": "nobody",
        "app": APP,
        "autologin": True,
    }
    return client.connect(**(settings | overrides))


@pytest.fixture
def svc(emulator: SplunkEmulator) -> client.Service:
    return connect(emulator)


def raw(
    emulator: SplunkEmulator, method: str, path: str, data: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, bytes]:
    request = urllib.request.Request(emulator.url + path, data=data, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


def bearer() -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}"}


# ----------------------------------------------------------------------------------- saved searches


def test_a_created_alert_reads_back_with_rest_names_and_server_defaults(
    emulator: SplunkEmulator, svc: client.Service
) -> None:
    payload = rest_payload("worker-exception")
    created = create(svc, payload)
    fetched = svc.saved_searches[payload["name"]]

    for search in (created, fetched):
        content = search.content
        assert search.name == "extalerts - worker-exception"
        assert content["search"] == payload["params"]["search"]  # multi-line SPL survives byte for byte
        assert content["is_scheduled"] == "1"
        assert (content["alert_type"], content["alert_comparator"], content["alert_threshold"]) == (
            "number of events",
            "greater than",
            "0",
        )
        assert not {"enableSched", "counttype", "relation", "quantity"} & set(content)
        assert set(content["actions"].split(",")) == {"pagerduty", "slack"}
        assert (content["action.pagerduty"], content["action.slack"], content["action.email"]) == ("1", "1", "0")
        # What splunkd fills in for settings nobody sent.
        assert content["alert.expires"] == "24h"
        assert content["dispatch.ttl"] == "2p"
        assert content["max_concurrent"] == "1"
        assert content["schedule_priority"] == "default"
        assert content["schedule_window"] == "0"  # an every-minute alert gets none (allow_skew instead)
        # What extalerts sent: continuous scheduling, so a late run waits instead of being skipped.
        assert (content["realtime_schedule"], content["allow_skew"]) == ("0", "50%")
        # Empty values arrive as None: splunklib reads an empty XML element that way.
        assert content["alert_condition"] is None
        # Shared with the app and no permissions of its own yet: what the search app's default.meta grants.
        assert search.access == {
            "app": APP,
            "can_change_perms": "1",
            "can_list": "1",
            "can_share_app": "1",
            "can_share_global": "1",
            "can_share_user": "1",
            "can_write": "1",
            "modifiable": "1",
            "owner": "nobody",
            "perms": {"read": ["*"], "write": ["admin", "power"]},
            "removable": "1",
            "sharing": "app",
        }
    # The SDK posts to the collection with a trailing slash and reads entities back through their link.
    (post, get) = emulator.requests
    assert post[:2] == ("POST", "/servicesNS/nobody/extalerts_workers/saved/searches/")
    assert post[2:] == ({"name": payload["name"], **payload["params"]}, 201)
    assert get[1] == "/servicesNS/nobody/extalerts_workers/saved/searches/extalerts+-+worker-exception"


def test_every_rendered_payload_lands_as_its_rendered_conf_stanza(
    emulator: SplunkEmulator, svc: client.Service
) -> None:
    conf = (RENDERED / APP / "default" / "savedsearches.conf").read_text()
    stanzas = {stanza.name: stanza.as_dict() for stanza in parse_conf(conf)}
    payloads = [rest_payload(path.stem) for path in sorted((RENDERED / "rest").glob("*.json"))]
    assert payloads
    for payload in payloads:
        search = create(svc, payload)
        search.acl_update(**payload["acl"])
        assert emulator.conf_stanza(APP, payload["name"]) == stanzas[payload["name"]], payload["name"]
        perms = {"read": payload["acl"]["perms.read"].split(","), "write": payload["acl"]["perms.write"].split(",")}
        assert (search.access.sharing, search.access.owner, search.access.perms) == ("app", "nobody", perms)
    assert emulator.calls["POST /servicesNS/{owner}/{app}/saved/searches"] == len(payloads)


def test_update_resends_the_search_and_changes_only_what_it_names(
    emulator: SplunkEmulator, svc: client.Service
) -> None:
    payload = rest_payload("worker-exception")
    search = create(svc, payload)
    search.update(**{"alert.severity": "2", "actions": "slack"})

    (*_, (method, path, body, status)) = emulator.requests
    assert (method, path, status) == (
        "POST",
        "/servicesNS/nobody/extalerts_workers/saved/searches/extalerts%20-%20worker-exception",
        200,
    )
    assert body == {"search": payload["params"]["search"], "alert.severity": "2", "actions": "slack"}
    content = search.refresh().content
    assert (content["alert.severity"], content["actions"], content["cron_schedule"]) == ("2", "slack", "* * * * *")
    # A disabled action stays in the stanza as 0, as splunkd writes it.
    stanza = emulator.conf_stanza(APP, payload["name"])
    assert (stanza["action.pagerduty"], stanza["action.slack"]) == ("0", "1")
    with pytest.raises(client.IllegalOperationException):
        search.update(name="renamed")


def test_raw_updates_must_resend_the_search_and_cannot_rename(emulator: SplunkEmulator, svc: client.Service) -> None:
    create(svc, rest_payload("worker-exception"))
    path = "/servicesNS/nobody/extalerts_workers/saved/searches/extalerts%20-%20worker-exception"
    status, body = raw(emulator, "POST", path, b"alert.severity=2", bearer())
    assert (status, b'Argument "search" is required.' in body) == (400, True)
    status, body = raw(emulator, "POST", path, b"search=index%3Dmain&name=renamed", bearer())
    assert (status, b'Argument "name" is not supported by this handler.' in body) == (400, True)
    assert svc.saved_searches["extalerts - worker-exception"].content["alert.severity"] == "5"


def test_acl_update_is_reflected_in_eai_acl(svc: client.Service) -> None:
    search = create(svc, rest_payload("worker-exception"))
    search.acl_update(sharing="global", owner="nobody", **{"perms.read": "*", "perms.write": "admin,sc_admin"})
    assert search.access.sharing == "global"
    assert search.access.perms == {"read": ["*"], "write": ["admin", "sc_admin"]}
    # Shared globally, it is visible from any app.
    other_app = svc.saved_searches.list(owner="nobody", app="search")
    assert [s.name for s in other_app] == ["extalerts - worker-exception"]
    with pytest.raises(binding.HTTPError, match=r'HTTP 400 .* Argument "app" is not supported by this handler\.'):
        search.acl_update(sharing="app", owner="nobody", app=APP)


def test_list_filters_with_search_and_pages_with_count_and_offset(
    emulator: SplunkEmulator, svc: client.Service
) -> None:
    for letter in "edcba":
        svc.saved_searches.create(f"extalerts - {letter}", "index=main", description=f"rule {letter}")
    svc.saved_searches.create("someone else's report", "index=main", description="mentions extalerts - too")

    def names(**kwargs: Any) -> list[str]:
        return [s.name for s in svc.saved_searches.list(**kwargs)]

    prefixed = ["extalerts - a", "extalerts - b", "extalerts - c", "extalerts - d", "extalerts - e"]
    assert names(search="name=extalerts - *") == prefixed
    # A bare term matches any field, so the description pulls in the foreign report too.
    assert names(search="extalerts - ") == [*prefixed, "someone else's report"]
    assert names(search="name=extalerts - *", count=2, offset=1) == ["extalerts - b", "extalerts - c"]
    emulator.calls.clear()
    assert [s.name for s in svc.saved_searches.iter(pagesize=2, search="name=extalerts*")] == prefixed
    assert emulator.calls["GET /servicesNS/{owner}/{app}/saved/searches"] == 3
    # Without count, splunkd answers 30 entries at most; count=0 means all.
    for index in range(31):
        svc.saved_searches.create(f"bulk {index:02}", "index=main")
    status, body = raw(
        emulator, "GET", f"/servicesNS/-/-/saved/searches?output_mode=json&search={'name%3Dbulk*'}", headers=bearer()
    )
    document = json.loads(body)
    assert (status, len(document["entry"]), document["paging"]) == (200, 30, {"total": 31, "perPage": 30, "offset": 0})
    status, body = raw(emulator, "GET", "/servicesNS/-/-/saved/searches?output_mode=json&count=0", headers=bearer())
    assert len(json.loads(body)["entry"]) == 37


def test_json_output_mode_has_splunks_entry_shape(emulator: SplunkEmulator, svc: client.Service) -> None:
    create(svc, rest_payload("worker-exception"))
    status, body = raw(
        emulator, "GET", "/servicesNS/nobody/extalerts_workers/saved/searches?output_mode=json", headers=bearer()
    )
    document = json.loads(body)
    (entry,) = document["entry"]
    assert status == 200
    assert document["paging"] == {"total": 1, "perPage": 30, "offset": 0}
    assert entry["name"] == "extalerts - worker-exception"
    assert (
        entry["links"]["alternate"]
        == "/servicesNS/nobody/extalerts_workers/saved/searches/extalerts%20-%20worker-exception"
    )
    assert (entry["acl"]["sharing"], entry["acl"]["can_write"]) == ("app", True)
    # JSON mode types booleans and integers, and leaves the hoisted ACL as null in the content.
    content = entry["content"]
    assert (content["is_scheduled"], content["alert.severity"], content["alert.digest_mode"]) == (True, 5, False)
    assert content["alert.track"] == "1"  # true, false or auto: not a plain boolean
    assert (content["alert.expires"], content["eai:acl"]) == ("24h", None)


def test_delete_and_missing_searches(svc: client.Service) -> None:
    name = "extalerts - worker-exception"
    create(svc, rest_payload("worker-exception"))
    svc.saved_searches.delete(name)
    assert name not in svc.saved_searches
    with pytest.raises(KeyError):
        svc.saved_searches[name]
    with pytest.raises(KeyError):
        svc.saved_searches.delete(name)
    with pytest.raises(binding.HTTPError, match=f"HTTP 404 Not Found -- Could not find object id={name}"):
        svc.get(f"saved/searches/{name}")


def test_enable_and_disable(svc: client.Service) -> None:
    search = create(svc, rest_payload("worker-exception"))
    assert search.disable().refresh().content["disabled"] == "1"
    assert search.enable().refresh().content["disabled"] == "0"


@pytest.mark.parametrize(
    "argument", ["alert.trak", "enableSched", "counttype", "relation", "quantity", "triggered_alert_count"]
)
def test_unknown_and_conf_only_arguments_are_refused(svc: client.Service, argument: str) -> None:
    message = f'HTTP 400 Bad Request -- Argument "{argument}" is not supported by this handler.'
    with pytest.raises(binding.HTTPError, match=re.escape(message)) as refused:
        svc.saved_searches.create("extalerts - x", "index=main", **{argument: "1"})
    assert refused.value.status == 400
    assert "extalerts - x" not in svc.saved_searches


@pytest.mark.parametrize(
    ("argument", "value"),
    [
        ("is_scheduled", "sometimes"),
        ("alert.track", "often"),
        ("alert.severity", "7"),
        ("cron_schedule", "*/5 * * *"),
        ("cron_schedule", "0 9 * * MON"),
        ("alert_type", "number of results"),
        ("alert_comparator", "bigger than"),
        ("alert_threshold", "ten"),
        ("alert.suppress.period", "half an hour"),
        ("schedule_window", "soon"),
        ("dispatch.ttl", "2 periods"),
        ("allow_skew", "5"),
    ],
)
def test_values_are_checked_as_the_spec_documents_them(svc: client.Service, argument: str, value: str) -> None:
    with pytest.raises(binding.HTTPError, match=re.escape(f'Bad value "{value}" for argument "{argument}"')):
        svc.saved_searches.create("extalerts - x", "index=main", **{argument: value})


def test_action_flags_are_read_only_over_rest(emulator: SplunkEmulator, svc: client.Service) -> None:
    search = svc.saved_searches.create(
        "extalerts - x", "index=main", **{"action.email": "1", "action.email.to": "a@b.c"}
    )
    assert (search.content["action.email"], search.content["actions"]) == ("0", None)
    assert emulator.conf_stanza(APP, "extalerts - x") == {"search": "index=main", "action.email.to": "a@b.c"}


def test_duplicate_create_is_a_conflict(svc: client.Service) -> None:
    payload = rest_payload("worker-exception")
    create(svc, payload)
    message = "A saved search with that name already exists."
    with pytest.raises(binding.HTTPError, match=re.escape(message)) as conflict:
        create(svc, payload)
    assert conflict.value.status == 409


def test_searches_of_other_apps_and_owners_are_listed_with_their_own_namespace(
    emulator: SplunkEmulator, svc: client.Service
) -> None:
    create(svc, rest_payload("worker-exception"))
    svc.saved_searches.create("hand-made report", "index=main")
    svc.saved_searches.create(
        "extalerts - lookalike", "index=main", namespace=client.namespace(sharing="app", app="search")
    )
    emulator.add_saved_search(APP, "extalerts - private draft", {"search": "index=main"}, owner="alice", sharing="user")

    everywhere = {s.name: s for s in svc.saved_searches.list(owner="-", app="-")}
    assert {name: (s.access.app, s.access.owner, s.access.sharing) for name, s in everywhere.items()} == {
        "extalerts - worker-exception": (APP, "nobody", "app"),
        "hand-made report": (APP, "nobody", "app"),
        "extalerts - lookalike": ("search", "nobody", "app"),
        "extalerts - private draft": (APP, "alice", "user"),
    }
    # Seen from nobody in the app, neither the other app's search nor alice's private one shows.
    assert sorted(s.name for s in svc.saved_searches) == ["extalerts - worker-exception", "hand-made report"]
    # Each entity keeps its own namespace, so writes go where the search lives.
    everywhere["extalerts - private draft"].update(description="mine")
    everywhere["extalerts - lookalike"].update(description="theirs")
    paths = [path for method, path, *_ in emulator.requests[-2:]]
    assert paths == [
        "/servicesNS/alice/extalerts_workers/saved/searches/extalerts%20-%20private%20draft",
        "/servicesNS/nobody/search/saved/searches/extalerts%20-%20lookalike",
    ]
    # /services/… is the caller's own view: its searches and everything shared, in the app "search".
    status, body = raw(emulator, "GET", "/services/saved/searches?output_mode=json", headers=bearer())
    assert (status, [entry["name"] for entry in json.loads(body)["entry"]]) == (200, ["extalerts - lookalike"])
    with pytest.raises(binding.HTTPError, match="wildcard namespace"):
        svc.saved_searches.create("extalerts - y", "index=main", owner="-", app="-")


# ----------------------------------------------------------------------------------- fired alerts


def test_fired_alerts_are_listed_per_alerting_search(emulator: SplunkEmulator, svc: client.Service) -> None:
    payload = rest_payload("worker-exception")
    search = create(svc, payload)
    assert len(search.fired_alerts) == 0
    assert payload["name"] not in svc.fired_alerts
    assert emulator.fire(APP, payload["name"]) is not None
    assert emulator.fire(APP, payload["name"]) is not None

    groups = {group.name: group.count for group in svc.fired_alerts}
    assert groups == {"-": 2, payload["name"]: 2}
    assert search.refresh().alert_count == 2
    alerts = list(search.fired_alerts)
    assert len(alerts) == 2
    assert {alert.content["savedsearch_name"] for alert in alerts} == {payload["name"]}
    assert alerts[0].content["severity"] == "5"
    # Untracked alerts never reach the Triggered Alerts list.
    svc.saved_searches.create("untracked", "index=main", **{"alert.track": "0"})
    assert emulator.fire(APP, "untracked") is None


# ----------------------------------------------------------------------------------- authentication


def test_a_wrong_token_is_refused_with_401(emulator: SplunkEmulator) -> None:
    svc = connect(emulator, splunkToken="not-the-token")
    with pytest.raises(binding.AuthenticationError) as refused:
        svc.saved_searches.list()
    assert refused.value.status == 401
    status, body = raw(emulator, "GET", "/servicesNS/nobody/extalerts_workers/saved/searches")
    assert status == 401
    assert b'<msg type="WARN">call not properly authenticated</msg>' in body


def test_username_and_password_login_uses_the_session_cookie(emulator: SplunkEmulator) -> None:
    svc = connect(emulator, splunkToken=None, username=USERNAME, password=PASSWORD)
    assert svc.saved_searches.list() == []
    assert list(svc.get_cookies()) == [f"splunkd_{emulator.port}"]
    login = emulator.requests[0]
    assert login == ("POST", "/services/auth/login", {"username": USERNAME, "password": "******", "cookie": "1"}, 200)
    with pytest.raises(binding.AuthenticationError, match="Login failed"):
        connect(emulator, splunkToken=None, username=USERNAME, password=PASSWORD[::-1])
    basic = binding.Context(
        host="127.0.0.1", port=emulator.port, scheme="http", username=USERNAME, password=PASSWORD, basic=True
    )
    assert basic.get("/servicesNS/-/-/saved/searches").status == 200


# ----------------------------------------------------------------------------------- HEC


def test_hec_raw_ingest_keeps_lines_per_index_and_sourcetype(emulator: SplunkEmulator) -> None:
    channel = str(uuid.uuid4())
    events = [{"Outcome": "exception", "ScriptName": "api"}, {"Outcome": "ok", "ScriptName": "api"}]
    body = "\n".join(json.dumps(event) for event in events).encode() + b"\n"
    path = f"/services/collector/raw?channel={channel}&index=cloudflare&sourcetype=cloudflare:workers"
    hec = {"Authorization": f"Splunk {HEC_TOKEN}"}
    assert raw(emulator, "POST", path, body, hec) == (200, b'{"text": "Success", "code": 0}')
    assert [json.loads(line) for line in emulator.ingested("cloudflare", "cloudflare:workers")] == events
    # Gzip bodies are unpacked, as HEC does.
    gzipped = {**hec, "Content-Encoding": "gzip"}
    assert raw(emulator, "POST", path, gzip.compress(body), gzipped)[0] == 200
    assert len(emulator.ingested("cloudflare", "cloudflare:workers")) == 4
    # The channel may come as a header instead.
    header_channel = {**hec, "X-Splunk-Request-Channel": channel}
    assert raw(emulator, "POST", "/services/collector/raw", b"plain line", header_channel)[0] == 200
    assert emulator.ingested("main", "httpevent") == ["plain line"]

    status, answer = raw(emulator, "POST", path, body, {"Authorization": "Splunk wrong"})
    assert (status, json.loads(answer)) == (403, {"text": "Invalid token", "code": 4})
    status, answer = raw(emulator, "POST", "/services/collector/raw", body, hec)
    assert (status, json.loads(answer)) == (400, {"text": "Data channel is missing", "code": 10})


# ----------------------------------------------------------------------------------- faults


def test_faults_answer_like_a_struggling_splunkd(emulator: SplunkEmulator, svc: client.Service) -> None:
    emulator.set_faults(Faults(rate=1.0, kinds=("429",)))
    with pytest.raises(binding.HTTPError, match="HTTP 503 Service Unavailable -- Service Unavailable"):
        svc.saved_searches.list()
    emulator.set_faults(Faults(rate=1.0, kinds=("500",)))
    with pytest.raises(binding.HTTPError) as failed:
        svc.saved_searches.list()
    assert failed.value.status == 500

    # Lost after commit: the client sees the connection drop, yet the search exists.
    emulator.set_faults(Faults(rate=1.0, kinds=("lost",)))
    with pytest.raises(http.client.RemoteDisconnected):
        create(svc, rest_payload("worker-exception"))
    emulator.set_faults(Faults(rate=1.0, kinds=("slow",), slow_seconds=0.05))
    assert [s.name for s in svc.saved_searches.list()] == ["extalerts - worker-exception"]
    emulator.set_faults(Faults())
    with pytest.raises(binding.HTTPError) as conflict:
        create(svc, rest_payload("worker-exception"))
    assert conflict.value.status == 409
    assert emulator.faults_injected == {"429": 1, "500": 1, "lost": 1, "slow": 1}


def test_the_emulator_and_the_renderer_agree_on_rest_names() -> None:
    """The emulator derives the REST names on its own (tests/contracts/ holds them to the published spec)."""
    assert REST_NAMES == splunk_keys.REST_NAMES
    assert not set(REST_NAMES) & SAVEDSEARCH_ARGUMENTS
