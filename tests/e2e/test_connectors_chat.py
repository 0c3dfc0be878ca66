"""The chat connectors -- slack, mattermost, teams -- as a user meets them.

- Golden renders: every canonical event of tests/data/golden/*.expected.json
  through `hookline render` for each connector, compared with the bodies
  checked in under tests/data/connectors/<connector>/, and each accepted by
  the mock receiver's rule checks (tests/e2e/mock_chat.py). Run with
  HOOKLINE_REGEN_GOLDEN=1 to rewrite them (then read the diff).
- Limits and overrides: long titles and texts, many labels, Mustache
  overrides with quotes and line breaks, Teams' 28 KB.
- Configuration: `hookline check` refuses bad keys, naming them;
  `hookline connectors NAME` describes every key.
- Classification through the running engine: the mocks answer each
  documented error and the store must show the right outcome.
- One end-to-end delivery per connector."""
import concurrent.futures
import json
import os
from pathlib import Path

import pytest

from conftest import ROOT, run_cli, db_rows, wait_rows
from mock_chat import (CARD_TYPE, TEAMS_MAX_BYTES, MattermostMock, SlackMock,
                       TeamsMock, mattermost_error, mattermost_problems,
                       slack_error, slack_problems, teams_legacy_error,
                       teams_problems, teams_workflow_error)
from sink import Answer

GOLDEN_IN = ROOT / "tests" / "data" / "golden"
GOLDEN_OUT = ROOT / "tests" / "data" / "connectors"
REGEN = os.environ.get("HOOKLINE_REGEN_GOLDEN") == "1"
DELIVERY_ID = "01J0DELIVERY00000000000001"
NOW = "1790000000000"
CONNECTORS = ("slack", "mattermost", "teams")
PROBLEMS = {"slack": slack_problems, "mattermost": mattermost_problems,
            "teams": teams_problems}
ELLIPSIS = "\u2026"
TOKEN = "chat-token"

URLS = {"slack": "https://hooks.slack.com/services/T000/B000/XXXX",
        "mattermost": "https://chat.example.com/hooks/xyz",
        "teams": "https://prod-00.westus.logic.azure.com/workflows/xyz"}
RENDER_CONFIG = f"""\
storage: {{ path: ./hookline.db }}
connectors:
  slack: {{ plugin: slack, url: "{URLS['slack']}" }}
  mattermost: {{ plugin: mattermost, url: "{URLS['mattermost']}" }}
  teams: {{ plugin: teams, url: "{URLS['teams']}" }}
%s
routes:
  - to: [slack, mattermost, teams%s]
"""


def golden_cases():
    cases = []
    for path in sorted(GOLDEN_IN.glob("*.expected.json")):
        fixture = path.name[:-len(".expected.json")]
        for i, ev in enumerate(json.loads(path.read_text())):
            cases.append((f"{fixture}__{i}", ev))
    return cases


CASES = golden_cases()


def write_config(tmp_path, extra_connectors="", extra_routes=""):
    cfg = tmp_path / "render.yaml"
    cfg.write_text(RENDER_CONFIG % (extra_connectors, extra_routes))
    return cfg


def render(cfg, connector, event, ok=True):
    """`hookline render` of one event -> the request as a dict (ok), or the
    CompletedProcess (ok=False)."""
    p = run_cli("render", "-c", str(cfg), "--delivery-id", DELIVERY_ID,
                "--now", NOW, connector, "-", input=json.dumps(event))
    if not ok:
        return p
    assert p.returncode == 0, p.stderr
    return json.loads(p.stdout)


# The plugin of each connector the render configurations name.
PLUGIN_OF = {"slack": "slack", "mattermost": "mattermost", "teams": "teams",
             "slack-o": "slack", "mm-o": "mattermost", "mm-text": "mattermost",
             "teams-o": "teams", "empty": "slack"}


def body_of(cfg, connector, event):
    """The body rendered for event, checked by the mock's rules, parsed;
    and the whole request."""
    req = render(cfg, connector, event)
    problems = PROBLEMS[PLUGIN_OF[connector]](req["body"].encode())
    assert problems == [], problems
    return json.loads(req["body"]), req


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """Every golden case through every connector, rendered in parallel."""
    cfg = write_config(tmp_path_factory.mktemp("render"))
    jobs = [(c, name, ev) for c in CONNECTORS for name, ev in CASES]
    with concurrent.futures.ThreadPoolExecutor(max_workers=4) as pool:
        outs = pool.map(lambda j: render(cfg, j[0], j[2], ok=False), jobs)
        return {(c, name): p for (c, name, _), p in zip(jobs, outs)}


@pytest.mark.parametrize("connector", CONNECTORS)
@pytest.mark.parametrize("case", [name for name, _ in CASES])
def test_golden_render(rendered, connector, case):
    p = rendered[(connector, case)]
    assert p.returncode == 0, p.stderr
    req = json.loads(p.stdout)
    headers = dict(req["headers"])
    assert (req["method"], req["url"], headers["Content-Type"]) == (
        "POST", URLS[connector], "application/json")
    assert headers["Idempotency-Key"] == DELIVERY_ID
    body = req["body"]
    assert PROBLEMS[connector](body.encode()) == []
    got = json.loads(body)
    path = GOLDEN_OUT / connector / f"{case}.json"
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(got, indent=2, ensure_ascii=False) + "\n")
    assert path.exists(), f"no golden file {path}; run with HOOKLINE_REGEN_GOLDEN=1"
    assert got == json.loads(path.read_text()), \
        f"{connector} renders {case} differently from {path}"


@pytest.mark.parametrize("connector", CONNECTORS)
def test_no_stale_golden_files(connector):
    have = {p.stem for p in (GOLDEN_OUT / connector).glob("*.json")}
    assert have == {name for name, _ in CASES}


# ---- limits, severity, resolved, overrides ------------------------------------

BASE = json.loads((GOLDEN_IN / "generic__canonical_fields.expected.json")
                  .read_text())[0]


def event(title=None, text=None, labels=None, **top):
    ev = json.loads(json.dumps(BASE))
    data = ev["data"]
    if title is not None:
        data["title"] = title
    if text is not None:
        data["text"] = text
    if labels is not None:
        data["labels"] = labels
    for k, v in top.items():
        if k in ("status", "url"):
            if v is None:
                data.pop(k, None)
            else:
                data[k] = v
        else:
            ev[k] = v
    return ev


def blocks_of(msg, kind):
    return [b for b in msg["blocks"] if b["type"] == kind]


def test_slack_cuts_to_its_limits_and_escapes_mrkdwn(tmp_path):
    cfg = write_config(tmp_path)
    title = "disk full on db-1 \u00e9\u00e9 " * 20        # 420 characters
    text = "<!channel> & <b>ping</b> " + "x" * 5000
    labels = {f"label{i:02}": f"value {i}" for i in range(30)}
    msg, _ = body_of(cfg, "slack", event(title, text, labels,
                                         severity="warning",
                                         url="https://x.example/" + "a" * 3000))
    (header,) = blocks_of(msg, "header")
    htext = header["text"]["text"]
    assert len(htext) == 150 and htext.endswith(ELLIPSIS)
    assert htext.startswith(":large_yellow_circle: disk full on db-1 \u00e9\u00e9")
    assert msg["text"].startswith(":large_yellow_circle: disk full")
    fields_sec, text_sec = blocks_of(msg, "section")
    fields = [f["text"] for f in fields_sec["fields"]]
    assert len(fields) == 10
    assert fields[:3] == ["*Severity*\n:large_yellow_circle: warning",
                          "*Source*\n/acme/generic", "*Status*\nsucceeded"]
    assert fields[3] == "*label00*\nvalue 0"
    assert fields[-1].startswith("*Other labels*\nlabel06=value 6, label07=")
    section = text_sec["text"]["text"]
    assert len(section) == 3000 and section.endswith(ELLIPSIS)
    assert section.startswith("&lt;!channel&gt; &amp; &lt;b&gt;ping&lt;/b&gt; x")
    assert "<!channel>" not in json.dumps(msg)
    # A button url over Slack's 3000 characters would be refused: none.
    assert blocks_of(msg, "actions") == []
    assert len(msg["blocks"]) <= 50


def test_slack_cut_never_leaves_half_an_entity(tmp_path):
    cfg = write_config(tmp_path)
    # The 3000th character falls inside "&amp;".
    msg, _ = body_of(cfg, "slack", event(text="y" * 2997 + "&&&&"))
    section = blocks_of(msg, "section")[1]["text"]["text"]
    assert section == "y" * 2997 + ELLIPSIS


def test_slack_leaves_out_a_blank_text(tmp_path):
    cfg = write_config(tmp_path)
    msg, _ = body_of(cfg, "slack", event(text=" \n\t "))
    assert [b["type"] for b in msg["blocks"]] == [
        "header", "section", "context", "actions"]
    assert "fields" in msg["blocks"][1]


@pytest.mark.parametrize("severity,emoji", [
    ("critical", ":red_circle:"), ("error", ":large_orange_circle:"),
    ("warning", ":large_yellow_circle:"), ("info", ":large_blue_circle:")])
def test_slack_severity_emoji(tmp_path, severity, emoji):
    cfg = write_config(tmp_path)
    msg, _ = body_of(cfg, "slack", event("db down", severity=severity,
                                         status="firing", type="alert.firing"))
    assert msg["text"] == f"{emoji} db down"
    assert blocks_of(msg, "header")[0]["text"]["text"] == f"{emoji} db down"


@pytest.mark.parametrize("status,type_", [
    ("resolved", "alert.firing"), ("closed", "message"),
    ("ok", "incident.resolved"), (None, "issue.closed")])
def test_resolved_reads_as_resolved(tmp_path, status, type_):
    cfg = write_config(tmp_path)
    ev = event("db down", severity="critical", status=status, type=type_)
    slack, _ = body_of(cfg, "slack", ev)
    assert slack["text"] == ":white_check_mark: Resolved: db down"
    mm, _ = body_of(cfg, "mattermost", ev)
    att = mm["attachments"][0]
    assert (att["title"], att["color"]) == ("Resolved: db down", "#2EB67D")
    assert att["fallback"] == "[resolved] Resolved: db down"
    teams, _ = body_of(cfg, "teams", ev)
    title = teams["attachments"][0]["content"]["body"][0]
    assert (title["text"], title["color"]) == ("Resolved: db down", "good")


OVERRIDES = """\
  slack-o:
    plugin: slack
    url: "https://hooks.slack.com/services/T000/B000/XXXX"
    channel: "#ops"
    username: hookline
    icon_emoji: ":rotating_light:"
    title: "{{data.labels.service}} says \\"hi\\"{{! a comment }}\\n{{severity}}"
    header: 'HEADER {{data.labels.env}}'
    text: '<{{{data.url}}}|Open the run> {{data.text}} {{data.labels.quote}}'
  mm-o:
    plugin: mattermost
    url: "https://chat.example.com/hooks/xyz"
    channel: town-square
    username: hookline
    icon_url: "https://example.com/icon.png"
    type: custom_hookline
    title: "{{data.labels.service}} says \\"hi\\"\\n{{severity}}"
    text: '{{data.text}} \\ {{data.labels.quote}}'
  mm-text:
    plugin: mattermost
    url: "https://chat.example.com/hooks/xyz"
    style: text
  teams-o:
    plugin: teams
    url: "https://prod-00.westus.logic.azure.com/workflows/xyz"
    title: "{{data.labels.service}} says \\"hi\\"\\n{{severity}}"
    text: '{{#data.labels}}{{env}}/{{service}}{{/data.labels}}: {{data.text}}'
  empty:
    plugin: slack
    url: "https://hooks.slack.com/services/T000/B000/XXXX"
    title: '{{data.labels.nothing}}'
"""
OVERRIDE_ROUTES = ", slack-o, mm-o, mm-text, teams-o, empty"


def test_overrides_render_unescaped_and_stay_valid_json(tmp_path):
    cfg = write_config(tmp_path, OVERRIDES, OVERRIDE_ROUTES)
    labels = dict(BASE["data"]["labels"], quote='a "quoted"\nline & <tag>')
    ev = event(text="restarted <3 & done", labels=labels)
    slack, req = body_of(cfg, "slack-o", ev)
    assert req["url"] == "https://hooks.slack.com/services/T000/B000/XXXX"
    assert (slack["channel"], slack["username"], slack["icon_emoji"]) == (
        "#ops", "hookline", ":rotating_light:")
    # Rendered without HTML escaping; quotes and the line break survive.
    assert slack["text"] == ':large_blue_circle: api says "hi"\ninfo'
    assert blocks_of(slack, "header")[0]["text"]["text"] == "HEADER production"
    # The template's own mrkdwn is kept; the event's values are escaped.
    assert blocks_of(slack, "section")[1]["text"]["text"] == (
        "<https://deploy.example.com/runs/881|Open the run> restarted &lt;3 "
        '&amp; done a "quoted"\nline &amp; &lt;tag&gt;')
    mm, _ = body_of(cfg, "mm-o", ev)
    assert {k: mm[k] for k in ("channel", "username", "icon_url", "type")} == {
        "channel": "town-square", "username": "hookline",
        "icon_url": "https://example.com/icon.png", "type": "custom_hookline"}
    att = mm["attachments"][0]
    assert att["title"] == 'api says "hi" info'       # a title is one line
    assert att["text"] == 'restarted <3 & done \\ a "quoted"\nline & <tag>'
    teams, _ = body_of(cfg, "teams-o", ev)
    body = teams["attachments"][0]["content"]["body"]
    assert body[0]["text"] == 'api says "hi" info'
    assert body[2]["text"] == "production/api: restarted <3 & done"
    # An override that renders empty falls back to the default.
    empty, _ = body_of(cfg, "empty", ev)
    assert empty["text"] == ":large_blue_circle: Deployed api 1.4.2 to production"


def test_mattermost_text_style_is_one_post(tmp_path):
    cfg = write_config(tmp_path, OVERRIDES, OVERRIDE_ROUTES)
    msg, _ = body_of(cfg, "mm-text", event("db down", "z" * 20000,
                                           severity="critical"))
    assert set(msg) == {"text"}
    text = msg["text"]
    assert len(text) == 16383
    assert text.startswith("#### :red_circle: db down\nzzz")
    assert ELLIPSIS + "\n\n**Severity:** critical \u00b7 **Source:** /acme/generic" in text
    assert text.endswith("_deploy.finished \u00b7 2025-11-27T18:04:11Z \u00b7 "
                         "event 01M8G49QRBSP2991E0W2GJFV6G_")
    assert "[Open](https://deploy.example.com/runs/881)" in text


def test_teams_cuts_the_text_to_fit_28kb(tmp_path):
    cfg = write_config(tmp_path)
    text = "line with \"quotes\" and \u00e9\n" * 4000    # ~100 KB
    msg, req = body_of(cfg, "teams", event("db down", text,
                                           severity="error"))
    assert len(req["body"].encode()) <= TEAMS_MAX_BYTES
    assert len(req["body"].encode()) > TEAMS_MAX_BYTES - 200  # cut, not dropped
    att = msg["attachments"][0]
    assert att["contentType"] == CARD_TYPE
    card = att["content"]
    assert (card["type"], card["version"]) == ("AdaptiveCard", "1.4")
    title, facts, body, context = card["body"]
    assert (title["text"], title["weight"], title["color"]) == (
        "db down", "Bolder", "attention")
    assert facts["facts"][:3] == [
        {"title": "Severity", "value": "error"},
        {"title": "Source", "value": "/acme/generic"},
        {"title": "Status", "value": "succeeded"}]
    assert len(facts["facts"]) == 8                  # every label kept
    assert body["text"].endswith(ELLIPSIS) and body["wrap"] is True
    assert card["actions"] == [{"type": "Action.OpenUrl", "title": "Open",
                                "url": "https://deploy.example.com/runs/881"}]


def test_teams_drops_facts_when_the_text_is_not_enough(tmp_path):
    cfg = write_config(tmp_path)
    labels = {f"label{i:04}": "v" * 40 for i in range(2000)}   # ~130 KB
    msg, req = body_of(cfg, "teams", event("db down", "some text", labels))
    assert len(req["body"].encode()) <= TEAMS_MAX_BYTES
    card = msg["attachments"][0]["content"]
    kinds = [b["type"] for b in card["body"]]
    assert kinds == ["TextBlock", "FactSet", "TextBlock"]  # no room for text
    facts = card["body"][1]["facts"]
    assert 100 < len(facts) < 2003
    assert facts[0] == {"title": "Severity", "value": "info"}
    assert facts[3] == {"title": "label0000", "value": "v" * 40}


def test_teams_refuses_what_cannot_fit(tmp_path):
    cfg = write_config(tmp_path)
    # The context line (type, time, id) is not cut: a type this long
    # leaves no card that fits.
    p = render(cfg, "teams", event(type="a" * 40000), ok=False)
    assert p.returncode == 1
    assert "teams: render: the card cannot be made smaller than Teams' " \
           "28000 bytes" in p.stderr


# ---- configuration ---------------------------------------------------------------

def check(tmp_path, section):
    f = tmp_path / "hookline.yaml"
    f.write_text("storage: { path: ./hookline.db }\nconnectors:\n  x:\n"
                 + section + "routes:\n  - to: [x]\n")
    p = run_cli("check", "-c", str(f))
    return p.returncode, [l[len(str(f)) + 1:] for l in p.stderr.splitlines()
                          if ": error: " in l]


@pytest.mark.parametrize("section,error", [
    ("    plugin: slack\n",
     "4:5: error: connectors.x: missing required key 'url' (the incoming "
     "webhook URL Slack gave"),
    ('    plugin: slack\n    url: https://hooks.slack.com/x\n'
     '    icon_emoji: siren\n',
     "6:17: error: connectors.x.icon_emoji: expected an emoji code such as "
     ":rotating_light:"),
    ('    plugin: slack\n    url: https://hooks.slack.com/x\n'
     '    channel: "#my channel"\n',
     "6:14: error: connectors.x.channel: expected #name or a channel id"),
    ('    plugin: slack\n    url: https://hooks.slack.com/x\n'
     '    header: "{{#data.title}}"\n',
     "6:13: error: connectors.x.header: the Mustache template does not "
     "compile"),
    ('    plugin: slack\n    url: smtp://hooks.slack.com/x\n',
     "5:10: error: connectors.x.url: expected the https:// URL of a Slack "
     "incoming webhook"),
    ('    plugin: mattermost\n    url: https://chat.example.com/hooks/x\n'
     '    type: alert\n',
     "6:11: error: connectors.x.type: 'alert' does not start with custom_; "
     "Mattermost accepts only custom_ post types from a webhook"),
    ('    plugin: mattermost\n    url: https://chat.example.com/hooks/x\n'
     '    icon_url: icon.png\n',
     "6:15: error: connectors.x.icon_url: expected an http:// or https:// URL"),
    ('    plugin: mattermost\n    url: https://chat.example.com/hooks/x\n'
     '    style: cards\n',
     "6:12: error: connectors.x.style: 'cards' is not one of attachment|text"),
    ("    plugin: teams\n    titel: x\n",
     "5:5: error: connectors.x.titel: unknown key 'titel'; did you mean "
     "'title'?"),
])
def test_bad_configuration_is_refused_at_its_key(tmp_path, section, error):
    rc, errors = check(tmp_path, section)
    assert rc == 1
    assert any(e.startswith(error) for e in errors), errors


def test_good_configuration_passes_check(tmp_path):
    cfg = write_config(tmp_path, OVERRIDES, OVERRIDE_ROUTES)
    p = run_cli("check", "-c", str(cfg))
    assert p.returncode == 0, p.stderr


@pytest.mark.parametrize("name,keys", [
    ("slack", ("url", "channel", "username", "icon_emoji", "title", "header",
               "text")),
    ("mattermost", ("url", "channel", "username", "icon_url", "type", "style",
                    "title", "text")),
    ("teams", ("url", "title", "text"))])
def test_connectors_command_describes_every_key(name, keys):
    p = run_cli("connectors", name)
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert f"\n{name} 1.0.0\n" in out
    for key in keys:
        assert f"    {key} " in out
    assert out.count("JSON library") >= 2   # how overrides are escaped
    assert "secret    required" in out        # url: a credential


# ---- the mocks refuse what the services refuse -----------------------------------

FIXTURES = Path("/work/shared/fixtures/outbound")


def test_mock_rules_accept_the_published_examples():
    for path in sorted(FIXTURES.glob("slack__*.json")):
        assert slack_problems(path.read_bytes()) == [], path
    for path in sorted(FIXTURES.glob("mattermost__*.json")):
        assert mattermost_problems(path.read_bytes()) == [], path
    path = FIXTURES / "teams__adaptive_card_incoming_webhook.json"
    assert teams_problems(path.read_bytes()) == []


def post_raw(mock, body, ctype="application/json"):
    import http.client
    conn = http.client.HTTPConnection("127.0.0.1", mock.port, timeout=5)
    try:
        conn.request("POST", "/hook", body=body, headers={"Content-Type": ctype})
        r = conn.getresponse()
        return r.status, r.read().decode()
    finally:
        conn.close()


def test_mocks_refuse_bodies_that_break_the_rules():
    long_header = {"text": "x", "blocks": [
        {"type": "header", "text": {"type": "plain_text", "text": "h" * 151}}]}
    with SlackMock() as s:
        assert post_raw(s, json.dumps(long_header)) == (400, "invalid_payload")
        assert post_raw(s, b'{"blocks": []}') == (400, "invalid_payload")
        many = {"text": "x", "blocks": [{"type": "divider"}] * 51}
        assert post_raw(s, json.dumps(many)) == (400, "invalid_payload")
        assert post_raw(s, b'{"text": "hi"}', "text/plain") == \
            (400, "invalid_payload")
        assert post_raw(s, b'{"text": "hi"}') == (200, "ok")
        problems = [p for _, ps in s.rejected for p in ps]
        assert "blocks[0].text.text: 151 characters, more than 150" in problems
        assert "blocks: 51, more than 50" in problems
    with MattermostMock() as m:
        status, body = post_raw(m, b'{"type": "alert", "text": "x"}')
        assert status == 400 and "must start with custom_" in body
        status, body = post_raw(m, b'{"username": "x"}')
        assert status == 400 and json.loads(body)["id"] == \
            "web.incoming_webhook.text.app_error"
        assert post_raw(m, b'{"text": "x"}') == (200, "ok")
    card = {"type": "message", "attachments": [{
        "contentType": CARD_TYPE, "content": {
            "type": "AdaptiveCard", "version": "1.4",
            "body": [{"type": "TextBlock", "text": "x" * 30000}]}}]}
    with TeamsMock() as t:
        status, body = post_raw(t, json.dumps(card))
        assert status == 200 and "HTTP error 413" in body
        card["attachments"][0]["content"]["body"][0]["text"] = "ok"
        assert post_raw(t, json.dumps(card)) == (200, "1")
        card["attachments"][0]["content"]["version"] = "9.9"
        status, body = post_raw(t, json.dumps(card))
        assert status == 200 and "HTTP error 400" in body
    with TeamsMock(legacy=False) as t:
        status, body = post_raw(t, json.dumps(card))
        assert status == 400 and "InvalidRequestContent" in body


# ---- classification through the running engine -----------------------------------

def engine_config(connectors, names, extra=""):
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
{connectors}
routes:
  - to: [{", ".join(names)}]
policies:
  later:
    retry: {{ schedule: [0s, 1h], jitter: 0 }}
  soon:
    retry: {{ schedule: [0s, 100ms, 1h], jitter: 0 }}
{extra}"""


def connector_yaml(name, plugin, url, policy="later", more=""):
    return (f"  {name}:\n    plugin: {plugin}\n    url: {url}\n"
            f"    policy: {policy}\n    timeout: 5s\n{more}")


def post(e, body):
    status, _, raw = e.request(
        "POST", "/v1/hooks/gen", body=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {TOKEN}",
                 "Content-Type": "application/json"})
    assert status == 202, raw
    return json.loads(raw)["id"]


def attempts_by_connector(db):
    rows = db_rows(db, "SELECT d.connector, a.status, a.outcome, "
                       "a.error_class, a.reason, a.started_at, d.next_at "
                       "FROM attempts a JOIN deliveries d "
                       "ON d.id = a.delivery_id ORDER BY a.seq")
    return {r[0]: r[1:] for r in rows}


def settle(e, tmp_path, cases, event):
    """Post one event to every connector of cases (name -> (answer,
    state)); wait until each delivery is in its state; the attempts."""
    db = tmp_path / "hookline.db"
    post(e, event)
    wait_rows(db, "SELECT connector, state, attempts FROM deliveries "
                  "ORDER BY connector",
              sorted((n, st, 1) for n, (_, st) in cases.items()))
    return db, attempts_by_connector(db)


SLACK_CASES = {
    "s-ok": (None, "delivered"),
    "s-invalid": (slack_error("invalid_payload"), "failed"),
    "s-user": (slack_error("user_not_found"), "failed"),
    "s-prohibited": (slack_error("action_prohibited"), "failed"),
    "s-notfound": (slack_error("channel_not_found"), "failed"),
    "s-archived": (slack_error("channel_is_archived"), "retrying"),
    "s-rollup": (slack_error("rollup_error"), "retrying"),
    "s-limited": (slack_error("rate_limited", retry_after=30), "retrying"),
}


def test_slack_classifies_every_documented_answer(engine, tmp_path):
    with SlackMock() as mock:
        conns = ""
        for name, (answer, _) in SLACK_CASES.items():
            if name == "s-limited":    # once only: the next attempt is fine
                mock.queue([answer], path=f"/{name}")
            elif answer:
                mock.respond_on(f"/{name}", answer.status, answer.body,
                                answer.headers)
            policy = "soon" if name == "s-limited" else "later"
            conns += connector_yaml(name, "slack", mock.url(f"/{name}"), policy)
        e = engine(engine_config(conns, SLACK_CASES))
        db, got = settle(e, tmp_path, SLACK_CASES,
                         {"title": "disk full", "severity": "critical"})
        assert mock.rejected == []
        assert len(mock.messages) == len(SLACK_CASES)
        want = {
            "s-ok": (200, "delivered", None, "HTTP 200 ok"),
            "s-invalid": (400, "failed", "http_4xx",
                          "HTTP 400 invalid_payload: Slack could not read"),
            "s-user": (400, "failed", "http_4xx",
                       "HTTP 400 user_not_found: the channel key names a user"),
            "s-prohibited": (403, "failed", "http_4xx",
                             "HTTP 403 action_prohibited: a workspace admin"),
            "s-notfound": (404, "failed", "http_4xx",
                           "HTTP 404 channel_not_found: no such channel"),
            "s-archived": (410, "retry", "http_4xx",
                           "HTTP 410 channel_is_archived: the channel is "
                           "archived; unarchive it"),
            "s-rollup": (500, "retry", "http_5xx",
                         "HTTP 500 rollup_error: a passing error inside Slack"),
            "s-limited": (429, "retry", "http_4xx",
                          "HTTP 429 rate_limited: over Slack's rate"),
        }
        for name, (status, outcome, cls, reason) in want.items():
            st, out, ec, why = got[name][:4]
            assert (st, out, ec) == (status, outcome, cls), name
            assert why.startswith(reason), (name, why)
        # Retry-After: 30 is honoured although the policy says 100ms.
        started, next_at = got["s-limited"][4:]
        assert 30000 <= next_at - started < 60000
        # 410 channel_is_archived holds the connector until resumed.
        (state, reason), = db_rows(
            db, "SELECT state, reason FROM connector_state "
                "WHERE connector = 's-archived'")
        assert state == "disabled" and "channel_is_archived" in reason
        e.wait_log(r"connector disabled.*connector=s-archived")
        assert e.stop() == 0


def test_slack_rate_limit_is_waited_out(engine, tmp_path):
    """One message a second: of two events sent at once, one gets 429 with
    Retry-After: 1 and goes again after at least that long."""
    with SlackMock(rate=(1.0, 1)) as mock:
        e = engine(engine_config(
            connector_yaml("slack", "slack", mock.url(), "soon"), ["slack"],
            extra="admin: { token: chat-admin-token }\n"))
        db = tmp_path / "hookline.db"
        # Paused while both are posted, the connector leases them together.
        admin = {"Authorization": "Bearer chat-admin-token"}
        assert e.request("POST", "/v1/connectors/slack/pause", b"", admin)[0] == 200
        post(e, {"title": "first", "severity": "error"})
        post(e, {"title": "second", "severity": "error"})
        wait_rows(db, "SELECT state FROM deliveries", [("queued",)] * 2)
        assert e.request("POST", "/v1/connectors/slack/resume", b"", admin)[0] == 200
        reqs = mock.wait_for(3, timeout=15)
        wait_rows(db, "SELECT state FROM deliveries", [("delivered",)] * 2)
        assert sorted(r.answer_status for r in reqs[:2]) == [200, 429]
        assert reqs[2].answer_status == 200
        limited = next(r for r in reqs if r.answer_status == 429)
        retry = reqs[2]
        assert retry.headers["Idempotency-Key"] == \
            limited.headers["Idempotency-Key"]
        assert retry.json()["text"] == limited.json()["text"]
        assert retry.time - limited.time >= 0.95
        rows = db_rows(db, "SELECT status, outcome, error_class, reason "
                           "FROM attempts ORDER BY seq")
        assert [r[:3] for r in rows] == [
            (200, "delivered", None), (429, "retry", "http_4xx"),
            (200, "delivered", None)]
        assert rows[1][3].startswith("HTTP 429 rate_limited: over Slack's "
                                     "rate of about one message a second")
        assert e.stop() == 0


MM_CASES = {
    "m-ok": (None, "delivered"),
    "m-bad": (mattermost_error(400, "web.incoming_webhook.parse.app_error",
                               "Unable to parse incoming data"), "failed"),
    "m-channel": (mattermost_error(404, "web.incoming_webhook.channel.app_error",
                                   "Couldn't find the channel."), "failed"),
    "m-gone": (mattermost_error(400, "web.incoming_webhook.invalid.app_error",
                                "Invalid webhook."), "retrying"),
    "m-off": (mattermost_error(501, "web.incoming_webhook.disabled.app_error",
                               "Incoming webhooks have been disabled by the "
                               "system admin."), "retrying"),
    "m-busy": (Answer(503, "busy", {"Retry-After": "20"}), "retrying"),
}


def test_mattermost_classifies_its_answers(engine, tmp_path):
    with MattermostMock() as mock:
        conns = ""
        for name, (answer, _) in MM_CASES.items():
            if answer:
                mock.respond_on(f"/{name}", answer.status, answer.body,
                                answer.headers)
            conns += connector_yaml(name, "mattermost", mock.url(f"/{name}"))
        e = engine(engine_config(conns, MM_CASES))
        db, got = settle(e, tmp_path, MM_CASES, {"title": "disk full"})
        assert mock.rejected == []
        want = {
            "m-ok": (200, "delivered", None, "HTTP 200 ok"),
            "m-bad": (400, "failed", "http_4xx",
                      "HTTP 400: Unable to parse incoming data "
                      "(web.incoming_webhook.parse.app_error)"),
            "m-channel": (404, "failed", "http_4xx",
                          "HTTP 404: Couldn't find the channel. "
                          "(web.incoming_webhook.channel.app_error); no such "
                          "channel"),
            "m-gone": (400, "retry", "http_4xx",
                       "HTTP 400: Invalid webhook. "
                       "(web.incoming_webhook.invalid.app_error); no such "
                       "webhook"),
            "m-off": (501, "retry", "http_5xx",
                      "HTTP 501: Incoming webhooks have been disabled"),
            "m-busy": (503, "retry", "http_5xx", "HTTP 503: busy"),
        }
        for name, (status, outcome, cls, reason) in want.items():
            st, out, ec, why = got[name][:4]
            assert (st, out, ec) == (status, outcome, cls), name
            assert why.startswith(reason), (name, why)
        held = dict(db_rows(db, "SELECT connector, state FROM connector_state"))
        assert held == {"m-gone": "disabled", "m-off": "disabled"}
        assert e.stop() == 0


TEAMS_CASES = {
    "t-legacy-ok": (None, "delivered"),
    "t-workflow-ok": (Answer(202, b""), "delivered"),
    "t-json-ok": (Answer(200, {"status": "ok"}), "delivered"),
    "t-429": (teams_legacy_error(429), "retrying"),
    "t-413": (teams_legacy_error(413), "failed"),
    "t-other": (Answer(200, "Webhook message delivery failed with error: "
                            "Microsoft Teams endpoint returned HTTP error 400 "
                            "with ContextId tcid=0"), "failed"),
    "t-json-error": (Answer(200, {"error": {"code": "Gone",
                                            "message": "flow is off"}}),
                     "failed"),
    "t-refused": (teams_workflow_error(400, "TriggerInputSchemaMismatch",
                                       "The input body does not match"),
                  "failed"),
    "t-throttled": (teams_workflow_error(429, "WorkflowTriggerIsThrottled",
                                         "slow down", retry_after=40),
                    "retrying"),
}


def test_teams_reads_failures_inside_a_200(engine, tmp_path):
    with TeamsMock() as mock:
        conns = ""
        for name, (answer, _) in TEAMS_CASES.items():
            if answer:
                mock.respond_on(f"/{name}", answer.status, answer.body,
                                answer.headers)
            policy = "soon" if name == "t-throttled" else "later"
            conns += connector_yaml(name, "teams", mock.url(f"/{name}"),
                                    policy)
        e = engine(engine_config(conns, TEAMS_CASES))
        db, got = settle(e, tmp_path, TEAMS_CASES,
                         {"title": "disk full", "severity": "warning"})
        assert mock.rejected == []
        legacy = ("Webhook message delivery failed with error: Microsoft "
                  "Teams endpoint returned HTTP error")
        want = {
            "t-legacy-ok": (200, "delivered", None, "HTTP 200 1"),
            "t-workflow-ok": (202, "delivered", None, "HTTP 202"),
            "t-json-ok": (200, "delivered", None, 'HTTP 200 {"status":"ok"}'),
            "t-429": (200, "retry", None,
                      f"HTTP 200 reporting 429 (Teams throttles above about 4 "
                      f"requests a second): {legacy} 429"),
            "t-413": (200, "failed", None,
                      "HTTP 200 reporting 413, the message is too large for "
                      f"Teams: {legacy} 413"),
            "t-other": (200, "failed", None,
                        f"HTTP 200 reporting a failure: {legacy} 400"),
            "t-json-error": (200, "failed", None,
                             "HTTP 200 reporting a failure: flow is off"),
            "t-refused": (400, "failed", "http_4xx",
                          "HTTP 400 TriggerInputSchemaMismatch: The input "
                          "body does not match"),
            "t-throttled": (429, "retry", "http_4xx",
                            "HTTP 429 WorkflowTriggerIsThrottled: slow down"),
        }
        for name, (status, outcome, cls, reason) in want.items():
            st, out, ec, why = got[name][:4]
            assert (st, out, ec) == (status, outcome, cls), name
            assert why.startswith(reason), (name, why)
        # The 429 inside a 200 waits the policy's delay (it has no
        # Retry-After); a workflow's 429 waits its Retry-After although the
        # policy says 100ms.
        started, next_at = got["t-429"][4:]
        assert 3600000 <= next_at - started < 3660000
        started, next_at = got["t-throttled"][4:]
        assert 40000 <= next_at - started < 70000
        assert e.stop() == 0


# ---- end to end ------------------------------------------------------------------

ALERT = {"title": "disk full on db-1", "severity": "critical",
         "text": "only 2% left", "url": "https://grafana.example/d/disk",
         "labels": {"host": "db-1", "team": "storage"}}


def deliver_one(engine, tmp_path, mock, plugin):
    e = engine(engine_config(connector_yaml("chat", plugin, mock.url("/hooks/x")),
                             ["chat"]))
    post(e, ALERT)
    (req,) = mock.wait_for(1)
    msg = mock.wait_messages(1)[0]
    wait_rows(tmp_path / "hookline.db", "SELECT state, attempts FROM deliveries",
              [("delivered", 1)])
    assert req.path == "/hooks/x"
    assert req.headers["Content-Type"] == "application/json"
    assert len(req.headers["Idempotency-Key"]) == 26
    assert e.stop() == 0
    return msg


def test_slack_end_to_end(engine, tmp_path):
    with SlackMock() as mock:
        msg = deliver_one(engine, tmp_path, mock, "slack")
    assert msg["text"] == ":red_circle: disk full on db-1"
    header, fields, text, context, actions = msg["blocks"]
    assert header["text"]["text"] == ":red_circle: disk full on db-1"
    assert [f["text"] for f in fields["fields"]] == [
        "*Severity*\n:red_circle: critical", "*Source*\n/default/gen",
        "*host*\ndb-1", "*team*\nstorage"]
    assert text["text"]["text"] == "only 2% left"
    assert context["elements"][0]["text"] == "message"
    assert actions["elements"][0]["url"] == "https://grafana.example/d/disk"


def test_mattermost_end_to_end(engine, tmp_path):
    with MattermostMock() as mock:
        msg = deliver_one(engine, tmp_path, mock, "mattermost")
    (att,) = msg["attachments"]
    assert (att["title"], att["title_link"], att["color"], att["text"]) == (
        "disk full on db-1", "https://grafana.example/d/disk", "#D0021B",
        "only 2% left")
    assert att["fallback"] == "[critical] disk full on db-1"
    assert att["fields"][:2] == [
        {"title": "Severity", "value": "critical", "short": True},
        {"title": "Source", "value": "/default/gen", "short": True}]


def test_teams_end_to_end(engine, tmp_path):
    with TeamsMock(legacy=False) as mock:
        msg = deliver_one(engine, tmp_path, mock, "teams")
    card = msg["attachments"][0]["content"]
    title, facts, text, _ = card["body"]
    assert (title["text"], title["color"]) == ("disk full on db-1", "attention")
    assert facts["facts"][0] == {"title": "Severity", "value": "critical"}
    assert {"title": "host", "value": "db-1"} in facts["facts"]
    assert text["text"] == "only 2% left"
