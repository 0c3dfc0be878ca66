"""The incident and ticketing connectors: pagerduty, opsgenie and jira.

1. Golden renders: every canonical event of tests/data/golden/*.expected.json
   through `hookline render` with each connector, compared (method, url,
   body) with tests/data/connectors/<connector>/<fixture>__<index>.json,
   and each rendered request sent to a mock receiver (tests/e2e/
   mock_incident.py) that enforces the APIs' published rules and must
   accept it. HOOKLINE_REGEN_GOLDEN=1 rewrites the expected files.
2. What each connector renders at the edges (limits, templates, mappings)
   and what create() refuses, through `hookline render` and `check`.
3. Classification of every documented answer through the running engine:
   the mock answers it, the deliveries and attempts rows say what happened.
4. End to end through the engine, including Jira's issue per dedupkey kept
   in the connector's key-value store across a restart.
"""
import base64
import concurrent.futures
import hashlib
import hmac
import http.client
import json
import os
import time
import urllib.parse
from pathlib import Path

import pytest

from conftest import ROOT, Engine, run_cli, db_rows, wait_rows
from mock_incident import (MockJira, MockOpsgenie, MockPagerDuty, adf_problems,
                           adf_text, jira_issue_problems,
                           opsgenie_alert_problems, pagerduty_problems)
from sink import Answer
from test_policies import ADMIN_TOKEN, hold_while_posting

GOLDEN = ROOT / "tests" / "data" / "golden"
EXPECTED = ROOT / "tests" / "data" / "connectors"
FIXTURES = Path("/work/shared/fixtures/outbound")
REGEN = os.environ.get("HOOKLINE_REGEN_GOLDEN") == "1"
CONNECTORS = ("pagerduty", "opsgenie", "jira")
DELIVERY_ID = "01J0DELIVERY00000000000001"
NOW = "1790000000000"

TOKEN = "incident-token"
ROUTING_KEY = "R0UT1NGKEY0123456789abcdefABCDEF"
GENIE_KEY = "eb243592-faa2-4ba2-a551q-1afdf565c889"
JIRA_BASIC = "bot@example.com:jira-api-token-1"
ELLIPSIS = "\u2026"

# The golden configuration: the services' real URLs, so the expected files
# do not depend on a port; requests are replayed to the mocks.
GOLDEN_CONFIG = f"""\
server: {{ listen: 127.0.0.1:0 }}
storage: {{ path: ./hookline.db }}
connectors:
  pagerduty: {{ plugin: pagerduty, routing_key: {ROUTING_KEY} }}
  opsgenie: {{ plugin: opsgenie, api_key: {GENIE_KEY} }}
  jira:
    plugin: jira
    url: https://acme.atlassian.net
    project: OPS
    auth: {{ basic: "{JIRA_BASIC}" }}
    resolve_transition: "31"
routes:
  - to: [pagerduty, opsgenie, jira]
"""


def golden_cases():
    cases = []
    for path in sorted(GOLDEN.glob("*.expected.json")):
        fixture = path.name[:-len(".expected.json")]
        for i, event in enumerate(json.loads(path.read_text())):
            cases.append((f"{fixture}__{i}", event))
    return cases


CASES = golden_cases()


def render(config_path, connector, event, tmp_dir, name="event.json"):
    """`hookline render` of one event: (exit status, stdout, stderr)."""
    ev = Path(tmp_dir) / name
    ev.write_text(json.dumps(event))
    p = run_cli("render", "-c", str(config_path), "--delivery-id", DELIVERY_ID,
                "--now", NOW, connector, str(ev))
    return p.returncode, p.stdout, p.stderr


def outcome_of(rc, stdout, stderr):
    """What a render gave, as stored in an expected file."""
    if rc != 0:
        return {"error": stderr.strip()}
    out = json.loads(stdout)
    if out.get("skip"):
        return {"skip": True}
    return {"method": out["method"], "url": out["url"],
            "body": json.loads(out["body"])}


@pytest.fixture(scope="module")
def golden_renders(tmp_path_factory):
    """Every (connector, case) rendered once, a few processes at a time."""
    tmp = tmp_path_factory.mktemp("golden")
    cfg = tmp / "hookline.yaml"
    cfg.write_text(GOLDEN_CONFIG)
    jobs = {}
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        for case, event in CASES:
            for c in CONNECTORS:
                jobs[(c, case)] = pool.submit(render, cfg, c, event, tmp,
                                              f"{c}-{case}.json")
        return {k: f.result() for k, f in jobs.items()}


@pytest.fixture(scope="module")
def mocks():
    with MockPagerDuty() as pd, MockOpsgenie(GENIE_KEY) as og, \
            MockJira(basic=JIRA_BASIC) as jr:
        yield {"pagerduty": pd, "opsgenie": og, "jira": jr}


def replay(request_json, mock):
    """Send a rendered request to the mock instead of the real host;
    (status, body)."""
    url = urllib.parse.urlsplit(request_json["url"])
    target = url.path + (f"?{url.query}" if url.query else "")
    conn = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=10)
    try:
        conn.request(request_json["method"], target,
                     body=request_json["body"].encode(),
                     headers=dict(request_json["headers"]))
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@pytest.mark.parametrize("connector", CONNECTORS)
@pytest.mark.parametrize("case", [c for c, _ in CASES])
def test_golden_render(golden_renders, mocks, connector, case):
    rc, stdout, stderr = golden_renders[(connector, case)]
    got = outcome_of(rc, stdout, stderr)
    path = EXPECTED / connector / f"{case}.json"
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n")
    assert path.exists(), f"{path} is missing; run with HOOKLINE_REGEN_GOLDEN=1"
    assert got == json.loads(path.read_text())
    if "method" in got:
        status, body = replay(json.loads(stdout), mocks[connector])
        assert 200 <= status < 300, f"the mock refused it: {status} {body!r}"


def test_golden_files_have_no_strays():
    """Every expected file belongs to a golden event, and the checks ran
    over a real number of them."""
    want = {f"{case}.json" for case, _ in CASES}
    assert len(want) >= 30
    for c in CONNECTORS:
        have = {p.name for p in (EXPECTED / c).glob("*.json")}
        assert have == want, f"{c}: stray {have - want}, missing {want - have}"


def test_golden_outcomes_are_what_each_api_needs(golden_renders):
    """A reading of the goldens that does not trust the expected files:
    the mapping of statuses to actions, skips and refusals."""
    events = dict(CASES)
    for case, ev in events.items():
        status = ev["data"].get("status")
        resolved = status in ("resolved", "closed")
        pd = outcome_of(*golden_renders[("pagerduty", case)])
        og = outcome_of(*golden_renders[("opsgenie", case)])
        jr = outcome_of(*golden_renders[("jira", case)])
        want = ("resolve" if resolved else
                "acknowledge" if status == "acknowledged" else "trigger")
        if want != "trigger" and "dedupkey" not in ev:
            assert "has no dedupkey" in pd["error"], case
        else:
            assert pd["body"]["event_action"] == want, case
            assert pd["body"].get("dedup_key") == ev.get("dedupkey"), case
        if resolved and "dedupkey" not in ev:
            assert og == {"skip": True}, case
        elif resolved:
            assert og["url"].endswith("/close?identifierType=alias"), case
        else:
            assert og["body"]["alias" if "dedupkey" in ev else "message"], case
        # Without a key-value store, render always opens an issue.
        assert jr["url"] == "https://acme.atlassian.net/rest/api/3/issue", case


# ---- the mocks refuse what the APIs refuse ---------------------------------

def send(mock, method, path, body=None, headers=None):
    """One request to a mock: (status, parsed JSON body or text)."""
    conn = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=10)
    try:
        raw = body if isinstance(body, (bytes, type(None))) else \
            json.dumps(body).encode()
        conn.request(method, path, body=raw, headers=headers or {})
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    try:
        return resp.status, json.loads(data)
    except ValueError:
        return resp.status, data.decode()


def test_mock_pagerduty_enforces_the_rules():
    trigger = json.loads((FIXTURES / "pagerduty__events_v2_enqueue_trigger.json").read_text())
    with MockPagerDuty() as pd:
        # The published example, as sent: its placeholder key is refused
        # just as PagerDuty refused it (the published 400).
        status, body = send(pd, "POST", "/v2/enqueue", trigger)
        assert (status, body) == (400, json.loads(
            (FIXTURES / "pagerduty__events_v2_response_400_alertmanager_test.json").read_text()))
        # With a real key, all three published examples are accepted.
        for name in ("trigger", "acknowledge", "resolve"):
            ev = json.loads((FIXTURES / f"pagerduty__events_v2_enqueue_{name}.json").read_text())
            ev["routing_key"] = ROUTING_KEY
            status, body = send(pd, "POST", "/v2/enqueue", ev)
            assert status == 202 and body["status"] == "success", body
        bad = {"routing_key": ROUTING_KEY, "event_action": "trigger",
               "payload": {"summary": "s" * 1025, "source": "",
                           "severity": "fatal", "timestamp": "yesterday"},
               "links": [{"text": "no href"}], "images": [{"src": "http://x"}]}
        status, body = send(pd, "POST", "/v2/enqueue", bad)
        assert status == 400 and body["status"] == "invalid event"
        assert len(body["errors"]) == 6, body["errors"]
        status, body = send(pd, "POST", "/v2/enqueue",
                            {"routing_key": ROUTING_KEY, "event_action": "resolve"})
        assert body["errors"] == ["'dedup_key' is required for event_action resolve"]
        status, body = send(pd, "POST", "/v2/enqueue",
                            {"routing_key": ROUTING_KEY, "event_action": "snooze",
                             "dedup_key": "d" * 256})
        assert len(body["errors"]) == 2
        pd.throttle(1, retry_after=7)
        status, body = send(pd, "POST", "/v2/enqueue", trigger)
        assert status == 429 and pd.requests[-1].answer_status == 429


def test_mock_opsgenie_enforces_the_rules():
    example = json.loads((FIXTURES / "opsgenie__create_alert_alertmanager_test_body.json").read_text())
    auth = {"Authorization": f"GenieKey {GENIE_KEY}"}
    with MockOpsgenie(GENIE_KEY) as og:
        assert send(og, "POST", "/v2/alerts", example)[0] == 401
        assert send(og, "POST", "/v2/alerts", example,
                    {"Authorization": f"Bearer {GENIE_KEY}"})[0] == 401
        status, body = send(og, "POST", "/v2/alerts", example, auth)
        assert status == 202 and body["result"] == "Request will be processed"
        bad = {"message": "m" * 131, "alias": "a" * 513, "source": "s" * 101,
               "tags": [f"t{i}" for i in range(21)], "priority": "P0",
               "details": {"k": "v" * 8000}, "actions": ["a" * 51]}
        status, body = send(og, "POST", "/v2/alerts", bad, auth)
        assert status == 422
        assert set(body["errors"]) == {"message", "alias", "source", "tags",
                                       "priority", "details", "actions"}
        assert send(og, "POST", "/v2/alerts", {"message": " "}, auth)[1][
            "errors"] == {"message": "Message can not be empty."}
        assert send(og, "POST", "/v2/alerts", b"{nope", auth)[0] == 400
        status, _ = send(og, "POST", "/v2/alerts/x/close?identifierType=id",
                         {"note": "n"}, auth)
        assert status == 422
        status, _ = send(og, "POST", f"/v2/alerts/{example['alias']}/close"
                         "?identifierType=alias", {"note": "n"}, auth)
        assert status == 202
        assert og.alerts[example["alias"]]["status"] == "closed"


def test_mock_jira_enforces_the_rules():
    example = json.loads((FIXTURES / "jira__create_issue_request_v3.json").read_text())
    assert jira_issue_problems(example) == ([], {})  # the published request
    auth = {"Authorization": "Basic " + base64.b64encode(
        JIRA_BASIC.encode()).decode()}
    issue = {"fields": {"project": {"key": "OPS"}, "issuetype": {"name": "Task"},
                        "summary": "s"}}
    with MockJira(basic=JIRA_BASIC) as jr:
        assert send(jr, "POST", "/rest/api/3/issue", issue)[0] == 401
        for n in (1, 2):
            status, body = send(jr, "POST", "/rest/api/3/issue", issue, auth)
            assert status == 201 and body["key"] == f"OPS-{n}"
            assert set(body) == {"id", "key", "self"}
        bad_doc = {"type": "doc", "version": 1, "content": [
            {"type": "paragraph", "content": [{"type": "text", "text": ""}]},
            {"type": "paragraph", "content": [{"type": "paragraph"}]},
            {"type": "bulletList", "content": [{"type": "paragraph"}]},
            {"type": "paragraph", "content": [
                {"type": "text", "text": "x", "marks": [{"type": "link"}]}]}]}
        assert len(adf_problems(bad_doc)) == 4
        bad = {"fields": {"project": {"key": "NOPE"}, "summary": "s" * 256,
                          "labels": ["has space"], "description": bad_doc}}
        status, body = send(jr, "POST", "/rest/api/3/issue", bad, auth)
        assert status == 400 and set(body["errors"]) == {
            "project", "issuetype", "summary", "labels", "description"}
        assert send(jr, "POST", "/rest/api/3/issue", {"summary": "x"}, auth)[1][
            "errorMessages"]
        doc = {"type": "doc", "version": 1, "content": []}
        assert send(jr, "POST", "/rest/api/3/issue/OPS-9/comment",
                    {"body": doc}, auth)[0] == 404
        assert send(jr, "POST", "/rest/api/3/issue/OPS-1/comment",
                    {"body": {"type": "doc"}}, auth)[0] == 400
        assert send(jr, "POST", "/rest/api/3/issue/OPS-1/comment",
                    {"body": doc}, auth)[0] == 201
        status, body = send(jr, "POST", "/rest/api/3/issue/OPS-1/transitions",
                            {"transition": {"id": "99"}}, auth)
        assert (status, body["errorMessages"]) == (
            400, ["Transition id '99' is not valid for this issue."])
        assert send(jr, "POST", "/rest/api/3/issue/OPS-1/transitions",
                    {"transition": {"id": "31"}}, auth) == (204, "")
        assert jr.issues["OPS-1"]["status"] == "Done"


# ---- rendering at the edges, through `hookline render` ----------------------

def base_event(**data):
    ev = json.loads((GOLDEN / "alertmanager__firing.expected.json").read_text())[0]
    ev["data"].update(data)
    return ev


def write_config(tmp_path, connector_yaml):
    cfg = tmp_path / "hookline.yaml"
    cfg.write_text("server: { listen: 127.0.0.1:0 }\n"
                   "storage: { path: ./hookline.db }\n"
                   f"connectors:\n  x:\n{connector_yaml}"
                   "routes:\n  - to: [x]\n")
    return cfg


def render_x(tmp_path, connector_yaml, event):
    """Render event with connector x; the request as JSON (body parsed)."""
    cfg = write_config(tmp_path, connector_yaml)
    rc, out, err = render(cfg, "x", event, tmp_path)
    assert rc == 0, err
    req = json.loads(out)
    if not req.get("skip"):
        req["body"] = json.loads(req["body"])
        req["headers"] = dict(req["headers"])
    return req


PD_YAML = f"    plugin: pagerduty\n    routing_key: {ROUTING_KEY}\n"
OG_YAML = f"    plugin: opsgenie\n    api_key: {GENIE_KEY}\n"
JIRA_YAML = ("    plugin: jira\n    url: https://acme.atlassian.net/\n"
             f"    project: OPS\n    auth: {{ basic: \"{JIRA_BASIC}\" }}\n")


def test_pagerduty_limits_templates_and_severities(tmp_path):
    long_key = "k" * 300
    ev = base_event(title="t" * 2000)
    ev["dedupkey"] = long_key
    ev["severity"] = "warning"
    req = render_x(tmp_path, PD_YAML + """\
    summary: '{{data.title}} "quoted"'
    component: '{{data.labels.alertname}}'
    group: '{{data.labels.nothing}}'
    class: "line one\\nline two"
    url: http://proxy.example:8080/pd/
""", ev)
    assert req["url"] == "http://proxy.example:8080/pd/v2/enqueue"
    body = req["body"]
    assert not pagerduty_problems(body)
    summary = body["payload"]["summary"]
    assert len(summary) == 1024 and summary.endswith(ELLIPSIS)
    # Longer than PagerDuty takes: a stable hash in its place.
    mac = hmac.new(b"hookline", long_key.encode(), hashlib.sha256).hexdigest()
    assert body["dedup_key"] == f"hookline-{mac}"
    assert body["payload"]["severity"] == "warning"
    assert body["payload"]["component"] == "Fire"
    assert "group" not in body["payload"]  # rendered empty: left out
    assert body["payload"]["class"] == "line one\nline two"
    assert body["payload"]["custom_details"] == {"alertname": "Fire",
                                                 "severity": "critical"}
    ev = base_event(title='a "quote"\nand a line')
    body = render_x(tmp_path, PD_YAML, ev)["body"]
    assert body["payload"]["summary"] == 'a "quote"\nand a line'
    assert body["routing_key"] == ROUTING_KEY


def test_pagerduty_acknowledge_and_resolve_need_a_dedupkey(tmp_path):
    cfg = write_config(tmp_path, PD_YAML)
    for status, action in (("resolved", "resolve"),
                           ("acknowledged", "acknowledge")):
        ev = base_event(status=status)
        del ev["dedupkey"]
        rc, out, err = render(cfg, "x", ev, tmp_path)
        assert rc == 1 and out == ""
        assert (f"hookline render: x: render: the event is {status}, so it "
                f"would {action} a PagerDuty incident, but it has no dedupkey"
                in err)
        ev["dedupkey"] = "d-1"
        rc, out, _ = render(cfg, "x", ev, tmp_path)
        assert json.loads(json.loads(out)["body"]) == {
            "routing_key": ROUTING_KEY, "event_action": action,
            "dedup_key": "d-1"}


def test_opsgenie_limits_mapping_and_close_url(tmp_path):
    labels = {f"label{i:02d}": "v" * 60 for i in range(40)}
    labels.update({f"big{i}": "x" * 1000 for i in range(10)})
    ev = base_event(title="m" * 500, labels=labels, text="d" * 20000)
    ev["severity"] = "error"
    req = render_x(tmp_path, OG_YAML + "    region: eu\n"
                   "    entity: '{{data.labels.label00}}'\n", ev)
    assert req["url"] == "https://api.eu.opsgenie.com/v2/alerts"
    assert req["headers"]["Authorization"] == f"GenieKey {GENIE_KEY}"
    body = req["body"]
    assert opsgenie_alert_problems(body) == {}
    assert len(body["message"]) == 130 and body["message"].endswith(ELLIPSIS)
    assert len(body["description"]) == 15000
    assert body["priority"] == "P2"
    assert body["tags"][0] == "/acme/alertmanager" and len(body["tags"]) == 20
    assert all(len(t) <= 50 for t in body["tags"])
    assert sum(len(k) + len(v) for k, v in body["details"].items()) <= 8000
    assert body["entity"] == "v" * 60
    for sev, prio in (("critical", "P1"), ("warning", "P3"), ("info", "P5")):
        ev = base_event()
        ev["severity"] = sev
        assert render_x(tmp_path, OG_YAML, ev)["body"]["priority"] == prio
    # Resolved: close by alias, the alias percent-encoded in the path.
    ev = base_event(status="resolved")
    ev["dedupkey"] = "db-1/disk full?"
    req = render_x(tmp_path, OG_YAML, ev)
    assert req["url"] == ("https://api.opsgenie.com/v2/alerts/"
                          "db-1%2Fdisk%20full%3F/close?identifierType=alias")
    assert req["body"] == {"source": "/acme/alertmanager",
                           "note": "Resolved: Fire"}
    del ev["dedupkey"]
    assert render_x(tmp_path, OG_YAML, ev) == {"skip": True}


def test_opsgenie_templates_are_json_safe(tmp_path):
    ev = base_event(title='say "hi"\n\\o/')
    req = render_x(tmp_path, OG_YAML + """\
    message: '[{{severity}}] {{data.title}}'
    description: '{{data.text}} -- {{data.labels.alertname}} & <b>'
""", ev)
    assert req["body"]["message"] == '[critical] say "hi"\n\\o/'
    assert req["body"]["description"] == "Something is on fire -- Fire & <b>"


def test_jira_issue_fields_adf_and_priorities(tmp_path):
    ev = base_event(title="line\none\ttab " + "s" * 300,
                    text="first para\nsecond line\n\nnext para\r\n\r\n\n",
                    labels={"team": "ops", "host": "db 1"})
    ev["severity"] = "info"
    req = render_x(tmp_path, JIRA_YAML + """\
    issue_type: Incident
    labels: [from-hookline, prod]
    priority_info: Lowest
""", ev)
    assert req["url"] == "https://acme.atlassian.net/rest/api/3/issue"
    assert req["headers"]["Authorization"] == "Basic " + base64.b64encode(JIRA_BASIC.encode()).decode()
    f = req["body"]["fields"]
    assert jira_issue_problems(req["body"], {"OPS"}) == ([], {})
    assert f["project"] == {"key": "OPS"} and f["issuetype"] == {"name": "Incident"}
    assert len(f["summary"]) == 255 and f["summary"].startswith("line one tab s")
    assert f["priority"] == {"name": "Lowest"}
    mac = hmac.new(b"hookline", ev["dedupkey"].encode(), hashlib.sha256)
    assert f["labels"] == ["from-hookline", "prod",
                           f"hookline-{mac.hexdigest()[:12]}"]
    doc = f["description"]
    assert adf_problems(doc) == []
    kinds = [n["type"] for n in doc["content"]]
    assert kinds == ["paragraph", "paragraph", "bulletList", "paragraph"]
    first = doc["content"][0]["content"]
    assert [n["type"] for n in first] == ["text", "hardBreak", "text"]
    assert adf_text(doc["content"][2]) == "team: opshost: db 1"
    link = doc["content"][3]["content"][0]
    assert link["marks"] == [{"type": "link", "attrs": {"href": ev["data"]["url"]}}]
    # "" sends no priority; a description template replaces the text.
    req = render_x(tmp_path, JIRA_YAML + """\
    priority_critical: ""
    description: 'Seen on {{data.labels.alertname}}: "{{data.text}}"'
""", base_event())
    f = req["body"]["fields"]
    assert "priority" not in f
    assert adf_text(f["description"]["content"][0]) == \
        'Seen on Fire: "Something is on fire"'


def check_errors(tmp_path, connector_yaml):
    cfg = write_config(tmp_path, connector_yaml)
    p = run_cli("check", "-c", str(cfg))
    assert p.returncode == 1, p.stdout
    return cfg, [l for l in p.stderr.splitlines() if ": error: " in l]


@pytest.mark.parametrize("yaml_text, line_col, message", [
    ("    plugin: pagerduty\n    routing_key: short\n", "6:18",
     "connectors.x.routing_key: expected the 32-character integration key "
     "of an Events API v2 integration, got 5 characters"),
    (PD_YAML + "    url: smtp://mail.example\n", "7:10",
     "connectors.x.url: expected the http:// or https:// base URL of the "
     "Events API (default https://events.pagerduty.com), got 'smtp://mail.example'"),
    ("    plugin: opsgenie\n    api_key: 'has space'\n", "6:14",
     "connectors.x.api_key: contains a space or a control character; copy "
     "the key again from the integration's page"),
    ("    plugin: jira\n    url: https://a.example\n    project: OPS\n", "5:5",
     "connectors.x: the jira connector refused its configuration: auth: give "
     "exactly one of basic (email:API-token) and bearer (a token)"),
    ("    plugin: jira\n    url: https://a.example\n    project: OPS\n"
     "    auth: { basic: \"a:b\", bearer: t }\n", "8:11",
     "connectors.x.auth: give exactly one of basic (email:API-token) and "
     "bearer (a token)"),
    ("    plugin: jira\n    project: OPS\n    auth: { bearer: t }\n", "5:5",
     "connectors.x: the jira connector refused its configuration: url: "
     "required: the base URL of the Jira site, e.g. "
     "https://your-domain.atlassian.net"),
    (JIRA_YAML.replace("project: OPS", "project: 'O P'"), "7:14",
     "connectors.x.project: expected a project key such as OPS (letters, "
     "digits and _, starting with a letter)"),
    (JIRA_YAML + "    resolve_transition: Done\n", "9:25",
     "connectors.x.resolve_transition: expected the transition's id, a "
     "number such as 31 (GET /rest/api/3/issue/KEY/transitions lists them)"),
    (JIRA_YAML + "    labels: [ok, 'not ok']\n", "9:13",
     "connectors.x.labels: item 2: a Jira label is 1 to 255 characters "
     "without spaces"),
])
def test_create_refuses_bad_configuration(tmp_path, yaml_text, line_col, message):
    cfg, errs = check_errors(tmp_path, yaml_text)
    assert errs == [f"{cfg}:{line_col}: error: {message}"]


def test_connectors_print_their_keys():
    for name, keys in (("pagerduty", ["routing_key", "source", "summary",
                                      "component", "group", "class"]),
                       ("opsgenie", ["api_key", "region", "message",
                                     "description", "entity", "source", "note"]),
                       ("jira", ["project", "issue_type", "auth.basic",
                                 "auth.bearer", "summary", "description",
                                 "labels", "priority_critical",
                                 "resolve_transition"])):
        p = run_cli("connectors", "-c", "/dev/null", name)
        assert p.returncode == 0, p.stderr
        for k in keys:
            assert f"\n    {k} " in p.stdout, (name, k, p.stdout)
        assert "quotes and newlines cannot break it" in p.stdout


# ---- through the running engine -------------------------------------------

FAST = "policies:\n  fast:\n    retry: { schedule: [0s, 100ms, 100ms, 100ms], jitter: none }\n"


def engine_config(connector_yaml, policies=FAST, timeout="5s"):
    return f"""\
server:
  listen: 127.0.0.1:0
storage:
  path: ./hookline.db
outbound: {{ allow_networks: [127.0.0.0/8] }}
log:
  level: debug
sources:
  gen:
    kind: generic
    verify: {{ bearer: {{ tokens: [{TOKEN}] }} }}
connectors:
  out:
    policy: fast
    timeout: {timeout}
{connector_yaml}
routes:
  - to: [out]
{policies}"""


def pd_yaml(mock, key=ROUTING_KEY):
    return f"    plugin: pagerduty\n    url: {mock.base_url()}\n    routing_key: {key}\n"


def og_yaml(mock, key=GENIE_KEY):
    return f"    plugin: opsgenie\n    url: {mock.base_url()}\n    api_key: {key}\n"


def jira_yaml(mock, basic=JIRA_BASIC, project="OPS", more=""):
    return (f"    plugin: jira\n    url: {mock.base_url()}\n"
            f"    project: {project}\n    auth: {{ basic: \"{basic}\" }}\n{more}")


def post(e, body):
    h = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    status, _, raw = e.request("POST", "/v1/hooks/gen",
                               body=json.dumps(body).encode(), headers=h)
    assert status == 202, raw
    return json.loads(raw)["id"]


ATTEMPTS = ("SELECT a.attempt, a.status, a.outcome, a.error_class, a.reason "
            "FROM attempts a JOIN deliveries d ON d.id = a.delivery_id "
            "WHERE d.event_id = ? ORDER BY a.seq")
STATE = "SELECT state, attempts, last_status FROM deliveries WHERE event_id = ?"
KV = "SELECT key, value FROM connector_kv WHERE connector = 'out' ORDER BY key"

ALERT = {"title": "disk full on db-1", "severity": "critical",
         "status": "firing", "dedupkey": "db-1/disk",
         "text": "96% used", "url": "https://grafana.example/d/1",
         "labels": {"host": "db-1", "team": "storage"}}


def alert(**kw):
    """ALERT with changes; a None value drops the field."""
    body = dict(ALERT)
    body.update(kw)
    return {k: v for k, v in body.items() if v is not None}


def stays(path, sql, want, args=(), seconds=0.3):
    """sql still gives want after a while: nothing more was tried."""
    time.sleep(seconds)
    assert db_rows(path, sql, args) == want


# -- PagerDuty --

def test_pagerduty_400_fails_with_the_errors(engine, tmp_path):
    answer = (FIXTURES / "pagerduty__events_v2_response_400_alertmanager_test.json").read_bytes()
    with MockPagerDuty() as pd:
        pd.script([Answer(400, answer, {"Content-Type": "application/json"})])
        e = engine(engine_config(pd_yaml(pd)))
        ev = post(e, alert())
        db = tmp_path / "hookline.db"
        wait_rows(db, STATE, [("failed", 1, 400)], (ev,))
        reason = ("HTTP 400: PagerDuty refused the event: Event object is "
                  "invalid: Length of 'routing_key' is incorrect (should be "
                  "32 characters)")
        assert db_rows(db, ATTEMPTS, (ev,)) == [(1, 400, "failed", "http_4xx", reason)]
        stays(db, STATE, [("failed", 1, 400)], (ev,))
        assert len(pd.requests) == 1 and pd.events == []
        assert e.stop() == 0


def test_pagerduty_429_waits_for_retry_after(engine, tmp_path):
    with MockPagerDuty() as pd:
        pd.throttle(1, retry_after="1")
        e = engine(engine_config(pd_yaml(pd), policies=FAST.replace(
            "[0s, 100ms, 100ms, 100ms]", "[0s, 100ms, 3s]")))
        ev = post(e, alert())
        db = tmp_path / "hookline.db"
        wait_rows(db, STATE, [("delivered", 2, 202)], (ev,))
        assert db_rows(db, ATTEMPTS, (ev,)) == [
            (1, 429, "retry", "http_4xx", "HTTP 429: over PagerDuty's rate for "
             "this routing key; trying again after its Retry-After"),
            (2, 202, "delivered", None, "HTTP 202: PagerDuty accepted the event")]
        first, second = pd.requests
        assert second.time - first.time >= 0.9  # the policy alone says 100ms
        assert first.json() == second.json()
        assert first.headers["idempotency-key"] == second.headers["idempotency-key"]
        assert e.stop() == 0


@pytest.mark.parametrize("status", [500, 502, 503])
def test_pagerduty_5xx_is_retried(engine, tmp_path, status):
    with MockPagerDuty() as pd:
        pd.script([Answer(status, b"upstream trouble")])
        e = engine(engine_config(pd_yaml(pd)))
        ev = post(e, alert())
        db = tmp_path / "hookline.db"
        wait_rows(db, STATE, [("delivered", 2, 202)], (ev,))
        rows = db_rows(db, ATTEMPTS, (ev,))
        assert rows[0] == (1, status, "retry", "http_5xx", f"HTTP {status}")
        assert len(pd.events) == 1
        assert e.stop() == 0


# -- Opsgenie --

@pytest.mark.parametrize("status, body, reason", [
    (422, {"message": "Request body is not processable. Please check the errors.",
           "errors": {"message": "Message can not be empty."}, "took": 0.0},
     "HTTP 422: Opsgenie refused the request: Request body is not processable. "
     "Please check the errors. (message: Message can not be empty.)"),
    (400, {"message": "Could not parse the request body", "took": 0.0},
     "HTTP 400: Opsgenie refused the request: Could not parse the request body"),
    (403, {"message": "You are not authorized for this action", "took": 0.0},
     "HTTP 403: Opsgenie refused the request: You are not authorized for this action"),
    (402, {"message": "Payment required", "took": 0.0},
     "HTTP 402: Opsgenie says the account's plan does not allow this: Payment required"),
])
def test_opsgenie_refusals_fail_with_the_message(engine, tmp_path, status, body, reason):
    with MockOpsgenie(GENIE_KEY) as og:
        og.script([Answer(status, body)])
        e = engine(engine_config(og_yaml(og)))
        ev = post(e, alert())
        db = tmp_path / "hookline.db"
        wait_rows(db, STATE, [("failed", 1, status)], (ev,))
        assert db_rows(db, ATTEMPTS, (ev,)) == [(1, status, "failed", "http_4xx", reason)]
        stays(db, STATE, [("failed", 1, status)], (ev,))
        if status == 402:
            e.wait_log(r"Opsgenie answered 402 Payment Required")
        assert e.stop() == 0


def test_opsgenie_wrong_key_fails_and_says_so(engine, tmp_path):
    with MockOpsgenie(GENIE_KEY) as og:
        e = engine(engine_config(og_yaml(og, key="not-the-key")))
        ev = post(e, alert())
        db = tmp_path / "hookline.db"
        wait_rows(db, STATE, [("failed", 1, 401)], (ev,))
        (row,) = db_rows(db, ATTEMPTS, (ev,))
        assert row == (1, 401, "failed", "http_4xx",
                       "HTTP 401: Opsgenie refused api_key; check it is the key "
                       "of an enabled API integration, for this region: Could "
                       "not authenticate")
        e.wait_log(r"ERROR.*Opsgenie refused the API key \(HTTP 401\).*connector=out")
        assert "not-the-key" not in e.log()
        assert og.alerts == {}
        assert e.stop() == 0


def test_opsgenie_429_and_5xx_are_retried(engine, tmp_path):
    with MockOpsgenie(GENIE_KEY) as og:
        og.throttle(1)
        og.script([Answer(502, b"bad gateway")])  # scripted first, then the 429
        e = engine(engine_config(og_yaml(og)))
        ev = post(e, alert())
        db = tmp_path / "hookline.db"
        wait_rows(db, STATE, [("delivered", 3, 202)], (ev,))
        assert db_rows(db, ATTEMPTS, (ev,)) == [
            (1, 502, "retry", "http_5xx", "HTTP 502"),
            (2, 429, "retry", "http_4xx", "HTTP 429: over Opsgenie's rate limit; "
             "trying again at the policy's next delay"),
            (3, 202, "delivered", None, "HTTP 202: Opsgenie accepted the request")]
        assert og.alerts["db-1/disk"]["count"] == 1
        assert e.stop() == 0


# -- Jira --

def test_jira_400_fails_with_the_errors(engine, tmp_path):
    with MockJira(basic=JIRA_BASIC) as jr:
        e = engine(engine_config(jira_yaml(jr, project="NOPE")))
        ev = post(e, alert())
        db = tmp_path / "hookline.db"
        wait_rows(db, STATE, [("failed", 1, 400)], (ev,))
        assert db_rows(db, ATTEMPTS, (ev,)) == [
            (1, 400, "failed", "http_4xx",
             "HTTP 400: Jira refused the new issue in NOPE: project: valid "
             "project is required")]
        # errorMessages, as in Jira's published 400.
        jr.script([Answer(400, (FIXTURES / "jira__create_issue_response_400.json").read_bytes(),
                          {"Content-Type": "application/json"})])
        ev = post(e, alert(dedupkey="other"))
        wait_rows(db, STATE, [("failed", 1, 400)], (ev,))
        assert db_rows(db, ATTEMPTS, (ev,))[0][4] == (
            "HTTP 400: Jira refused the new issue in NOPE: Field 'priority' is required")
        assert jr.issues == {} and db_rows(db, KV) == []
        assert e.stop() == 0


def test_jira_401_and_403_fail_and_say_so(engine, tmp_path):
    with MockJira(basic=JIRA_BASIC) as jr:
        e = engine(engine_config(jira_yaml(jr, basic="bot@example.com:wrong")))
        ev = post(e, alert())
        db = tmp_path / "hookline.db"
        wait_rows(db, STATE, [("failed", 1, 401)], (ev,))
        assert db_rows(db, ATTEMPTS, (ev,)) == [
            (1, 401, "failed", "http_4xx", "HTTP 401: Jira refused the "
             "credentials; check auth.basic (email:API-token) or auth.bearer")]
        e.wait_log(r"ERROR.*Jira refused the credentials \(HTTP 401\)")
        assert "wrong" not in e.log()
        jr.script([Answer(403, {"errorMessages": ["You do not have permission "
                                                  "to create issues in this project."],
                                "errors": {}})])
        ev = post(e, alert(dedupkey="two"))
        wait_rows(db, STATE, [("failed", 1, 403)], (ev,))
        assert db_rows(db, ATTEMPTS, (ev,))[0][2:] == (
            "failed", "http_4xx", "HTTP 403: the account behind auth may not "
            "make the new issue in OPS; give it the project's permissions")
        assert e.stop() == 0


def test_jira_429_is_retried(engine, tmp_path):
    with MockJira(basic=JIRA_BASIC) as jr:
        jr.throttle(1)
        e = engine(engine_config(jira_yaml(jr)))
        ev = post(e, alert())
        db = tmp_path / "hookline.db"
        wait_rows(db, STATE, [("delivered", 2, 201)], (ev,))
        assert db_rows(db, ATTEMPTS, (ev,)) == [
            (1, 429, "retry", "http_4xx", "HTTP 429: over Jira's rate limit; "
             "trying again at the policy's next delay"),
            (2, 201, "delivered", None, "HTTP 201: opened OPS-1")]
        assert list(jr.issues) == ["OPS-1"]
        assert e.stop() == 0


@pytest.mark.parametrize("status", ["firing", "resolved"])
def test_jira_404_on_a_gone_issue_opens_a_new_one(engine, tmp_path, status):
    """A comment (or a transition) on an issue someone deleted: 404, the
    connector forgets the issue, and the next attempt opens a new one."""
    with MockJira(basic=JIRA_BASIC) as jr:
        e = engine(engine_config(jira_yaml(jr, more="    resolve_transition: '31'\n")))
        ev1 = post(e, alert())
        db = tmp_path / "hookline.db"
        wait_rows(db, STATE, [("delivered", 1, 201)], (ev1,))
        wait_rows(db, KV, [("db-1/disk", "OPS-1")])
        jr.delete_issue("OPS-1")
        ev2 = post(e, alert(status=status))
        wait_rows(db, STATE, [("delivered", 2, 201)], (ev2,))
        path = "comment" if status == "firing" else "transitions"
        assert db_rows(db, ATTEMPTS, (ev2,)) == [
            (1, 404, "retry", "http_4xx", "HTTP 404: OPS-1 is gone (deleted or "
             "moved); forgot it, so the next attempt opens a new issue"),
            (2, 201, "delivered", None, "HTTP 201: opened OPS-2")]
        assert [r.path for r in jr.requests] == [
            "/rest/api/3/issue", f"/rest/api/3/issue/OPS-1/{path}",
            "/rest/api/3/issue"]
        assert db_rows(db, KV) == [("db-1/disk", "OPS-2")]
        assert e.stop() == 0


# ---- end to end --------------------------------------------------------------

def test_pagerduty_end_to_end(engine, tmp_path):
    with MockPagerDuty() as pd:
        e = engine(engine_config(pd_yaml(pd) + "    component: '{{data.labels.host}}'\n"))
        db = tmp_path / "hookline.db"
        for status in ("firing", "acknowledged", "resolved"):
            ev = post(e, alert(status=status))
            wait_rows(db, STATE, [("delivered", 1, 202)], (ev,))
        trigger, ack, resolve = pd.events
        assert trigger["event_action"] == "trigger"
        assert trigger["routing_key"] == ROUTING_KEY
        assert trigger["dedup_key"] == "db-1/disk"
        assert trigger["payload"]["summary"] == "disk full on db-1"
        assert trigger["payload"]["severity"] == "critical"
        assert trigger["payload"]["source"] == "/default/gen"
        assert trigger["payload"]["component"] == "db-1"
        assert trigger["payload"]["custom_details"] == {"host": "db-1", "team": "storage"}
        assert trigger["links"] == [{"href": "https://grafana.example/d/1",
                                     "text": "View in source"}]
        assert ack == {"routing_key": ROUTING_KEY, "event_action": "acknowledge",
                       "dedup_key": "db-1/disk"}
        assert resolve["event_action"] == "resolve"
        assert pd.incidents["db-1/disk"] == {"status": "resolved", "events": 3,
                                             "summary": "disk full on db-1"}
        assert pd.refusals == []
        assert e.stop() == 0


def test_opsgenie_end_to_end(engine, tmp_path):
    with MockOpsgenie(GENIE_KEY) as og:
        e = engine(engine_config(og_yaml(og) + "    note: 'closed by {{source}}'\n"))
        db = tmp_path / "hookline.db"
        ev = post(e, alert(severity="warning"))
        wait_rows(db, STATE, [("delivered", 1, 202)], (ev,))
        a = og.alerts["db-1/disk"]
        assert a["status"] == "open"
        assert a["body"] == {
            "message": "disk full on db-1", "alias": "db-1/disk",
            "description": "96% used\n\nhttps://grafana.example/d/1",
            "tags": ["/default/gen", "host:db-1", "team:storage"],
            "details": {"host": "db-1", "team": "storage"},
            "source": "/default/gen", "priority": "P3"}
        ev = post(e, alert(status="resolved"))
        wait_rows(db, STATE, [("delivered", 1, 202)], (ev,))
        assert og.alerts["db-1/disk"]["status"] == "closed"
        assert og.closes == [("db-1/disk", {"source": "/default/gen",
                                            "note": "closed by /default/gen"})]
        close = og.requests[-1]
        assert close.path == "/v2/alerts/db-1%2Fdisk/close"
        assert close.query == "identifierType=alias"
        # Resolved without a dedupkey: nothing to close, nothing sent.
        ev = post(e, alert(status="resolved", dedupkey=None))
        wait_rows(db, "SELECT state, attempts, last_error FROM deliveries "
                      "WHERE event_id = ?",
                  [("delivered", 1, "nothing to send for this event (the "
                                    "connector skipped it)")], (ev,))
        assert len(og.requests) == 2 and og.refusals == []
        assert e.stop() == 0


def test_jira_issue_per_dedupkey_survives_a_restart(tmp_path):
    """Two events of one dedupkey: one issue and a comment on it; after a
    restart the next event still comments on it; a resolved event moves it
    through resolve_transition and the dedupkey is forgotten, so the next
    firing opens a new issue."""
    with MockJira(basic=JIRA_BASIC) as jr:
        path = tmp_path / "hookline.yaml"
        path.write_text(engine_config(jira_yaml(
            jr, more="    resolve_transition: '31'\n    labels: [hookline]\n")))
        db = tmp_path / "hookline.db"
        e = Engine(path, cwd=tmp_path).start()
        try:
            ev = post(e, alert())
            wait_rows(db, STATE, [("delivered", 1, 201)], (ev,))
            ev = post(e, alert(text="97% used now"))
            wait_rows(db, STATE, [("delivered", 1, 201)], (ev,))
            assert list(jr.issues) == ["OPS-1"]
            issue = jr.issues["OPS-1"]
            mac = hmac.new(b"hookline", b"db-1/disk", hashlib.sha256).hexdigest()
            assert issue["fields"]["labels"] == ["hookline", f"hookline-{mac[:12]}"]
            assert issue["fields"]["priority"] == {"name": "Highest"}
            (comment,) = issue["comments"]
            assert adf_text(comment["content"][0]) == "firing: disk full on db-1"
            assert adf_text(comment["content"][1]) == "97% used now"
            assert db_rows(db, KV) == [("db-1/disk", "OPS-1")]
        finally:
            assert e.stop() == 0
        e = Engine(path, cwd=tmp_path).start()
        try:
            ev = post(e, alert(text="still full"))
            wait_rows(db, STATE, [("delivered", 1, 201)], (ev,))
            assert list(jr.issues) == ["OPS-1"]
            assert len(jr.issues["OPS-1"]["comments"]) == 2
            ev = post(e, alert(status="resolved"))
            wait_rows(db, STATE, [("delivered", 1, 204)], (ev,))
            assert db_rows(db, ATTEMPTS, (ev,))[0][4] == \
                "HTTP 204: moved OPS-1 through transition 31"
            assert jr.issues["OPS-1"]["transitions"] == ["31"]
            assert jr.issues["OPS-1"]["status"] == "Done"
            wait_rows(db, KV, [])
            ev = post(e, alert(title="disk full again"))
            wait_rows(db, STATE, [("delivered", 1, 201)], (ev,))
            assert list(jr.issues) == ["OPS-1", "OPS-2"]
            assert db_rows(db, KV) == [("db-1/disk", "OPS-2")]
            assert jr.refusals == []
        finally:
            assert e.stop() == 0


def test_jira_events_waiting_for_their_issue_are_tried_on_schedule(engine,
                                                                  tmp_path):
    """The four events are leased together and three of them wait at once
    (their render says retry): they are tried again on their 200 ms
    schedule, not when their leases run out. The lease asked for right
    after them must see those retries (it once read them as still being
    sent, 90 s away with a 60 s timeout)."""
    with MockJira(basic=JIRA_BASIC) as jr:
        gate = jr.hold("/rest/api/3/issue")
        policies = FAST.replace("[0s, 100ms, 100ms, 100ms]",
                                "[0s, 200ms], max_attempts: 100")
        e = engine(engine_config(jira_yaml(jr), timeout="60s",
                                 policies=policies + "    max_in_flight: 2\n")
                   + f"admin:\n  token: {ADMIN_TOKEN}\n")
        db = tmp_path / "hookline.db"
        hold_while_posting(e, db, "out", 4, lambda: [
            post(e, alert(text=f"n{i}")) for i in range(4)])
        # Each of the three has waited twice: the second try is the one the
        # schedule owes them.
        wait_rows(db, "SELECT count(*) FROM deliveries WHERE attempts >= 2 "
                      "AND state = 'retrying'", [(3,)])
        gate.set()
        wait_rows(db, "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
                  [(4,)])
        assert list(jr.issues) == ["OPS-1"]
        assert len(jr.issues["OPS-1"]["comments"]) == 3
        assert e.stop() == 0

def test_jira_resolved_without_a_transition_comments(engine, tmp_path):
    with MockJira(basic=JIRA_BASIC) as jr:
        e = engine(engine_config(jira_yaml(jr)))
        db = tmp_path / "hookline.db"
        for status in ("firing", "resolved"):
            ev = post(e, alert(status=status))
            wait_rows(db, STATE, [("delivered", 1, 201)], (ev,))
        (comment,) = jr.issues["OPS-1"]["comments"]
        assert adf_text(comment["content"][0]) == "Resolved: disk full on db-1"
        assert jr.issues["OPS-1"]["transitions"] == []
        assert db_rows(db, KV) == [("db-1/disk", "OPS-1")]
        assert e.stop() == 0


def test_jira_events_of_one_dedupkey_at_once_open_one_issue(engine, tmp_path):
    """Events of one dedupkey arriving while its issue is being opened wait
    for it (an attempt each, retried), so there is one issue and comments,
    not several issues."""
    with MockJira(basic=JIRA_BASIC) as jr:
        gate = jr.hold("/rest/api/3/issue")
        e = engine(engine_config(jira_yaml(jr), policies=FAST.replace(
            "[0s, 100ms, 100ms, 100ms]", "[0s, 200ms], max_attempts: 100"),
            timeout="60s"))  # the held create must not time out
        db = tmp_path / "hookline.db"
        ids = [post(e, alert(text=f"n{i}")) for i in range(4)]
        # The first holds the create; the three others tried and waited.
        wait_rows(db, "SELECT count(DISTINCT delivery_id) FROM attempts "
                      "WHERE reason LIKE 'render: delivery % is opening the "
                      "issue of this dedupkey; this one waits for it so as "
                      "not to open a second issue'", [(3,)])
        assert jr.issues == {} and jr.requests == []  # held: not yet recorded
        gate.set()
        wait_rows(db, "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
                  [(4,)])
        assert list(jr.issues) == ["OPS-1"]
        assert len(jr.issues["OPS-1"]["comments"]) == 3
        assert [r.path for r in jr.requests] == ["/rest/api/3/issue"] + [
            "/rest/api/3/issue/OPS-1/comment"] * 3
        waits = [r for i in ids for r in db_rows(db, ATTEMPTS, (i,))
                 if r[1] is None]
        assert waits and all(r[2:4] == ("retry", None) for r in waits), waits
        assert e.stop() == 0
