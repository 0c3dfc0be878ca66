"""Normalizing after the commit: stored webhooks become canonical events
(or 'unparsed' with the reason and the raw body kept), off the intake path."""
import json
import shutil
import signal
import sqlite3
import time
from pathlib import Path

from conftest import ROOT, run_cli

FIXTURES = ROOT.parent / "shared" / "fixtures" / "inbound"
TOKEN = "norm-token"


def config(schemas=None):
    extra = f"schemas_path: {schemas}\n" if schemas else ""
    return f"""\
server:
  listen: 127.0.0.1:0
storage:
  path: ./hookline.db
{extra}tenants:
  acme: {{ token: acme-token-0123456789 }}
sources:
  am:
    kind: alertmanager
    verify: {{ bearer: {{ tokens: [{TOKEN}] }} }}
  gen:
    kind: generic
    verify: {{ bearer: {{ tokens: [{TOKEN}] }} }}
    fields: {{ title: /alert/name, dedupkey: /alert/id }}
"""


def post(e, source, body):
    status, _, raw = e.request("POST", f"/v1/hooks/{source}", body=body,
                               headers={"Authorization": f"Bearer {TOKEN}",
                                        "Content-Type": "application/json"})
    assert status == 202, raw
    return json.loads(raw)["id"]


def wait_state(db_path, event_id, timeout=15):
    """Poll the store until the event leaves 'received'."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        db = sqlite3.connect(db_path)
        try:
            row = db.execute("SELECT state, state_reason FROM events WHERE id = ?",
                             (event_id,)).fetchone()
        finally:
            db.close()
        if row and row[0] != "received":
            return row
        time.sleep(0.05)
    raise AssertionError(f"event {event_id} was never normalized")


def resolve(doc, pointer):
    for token in pointer.split("/")[1:]:
        token = token.replace("~1", "/").replace("~0", "~")
        doc = doc[int(token)] if isinstance(doc, list) else doc[token]
    return doc


def canonical(db_path, event_id):
    """The stored canonical events, data.raw put back from the webhook's
    body where the row keeps only a pointer to it."""
    db = sqlite3.connect(db_path)
    try:
        rows = db.execute("SELECT id, type, severity, dedupkey, raw_ptr, body "
                          "FROM canonical WHERE event_id = ? ORDER BY id",
                          (event_id,)).fetchall()
        body = db.execute("SELECT body FROM events WHERE id = ?",
                          (event_id,)).fetchone()[0]
    finally:
        db.close()
    out = []
    for cid, ctype, sev, dedup, raw_ptr, text in rows:
        ev = json.loads(text)
        if raw_ptr is not None:
            assert "raw" not in ev["data"], "data.raw stored twice"
            ev["data"]["raw"] = resolve(json.loads(bytes(body)), raw_ptr)
        out.append((cid, ctype, sev, dedup, ev))
    return out


def test_alertmanager_group_becomes_one_event_per_alert(engine, tmp_path):
    e = engine(config())
    body = json.loads((FIXTURES / "alertmanager__firing.json").read_text())
    second = json.loads(json.dumps(body["alerts"][0]))
    second["labels"]["alertname"] = "Smoke"
    second["labels"]["severity"] = "warning"
    body["alerts"].append(second)
    event_id = post(e, "am", json.dumps(body).encode())
    assert wait_state(tmp_path / "hookline.db", event_id) == ("normalized", None)
    rows = canonical(tmp_path / "hookline.db", event_id)
    assert [r[0] for r in rows] == [f"{event_id}-1", f"{event_id}-2"]
    assert [(r[1], r[2]) for r in rows] == [("alert.firing", "critical"),
                                            ("alert.firing", "warning")]
    first = rows[0][4]
    assert first["specversion"] == "1.0"
    assert first["source"] == "/acme/am"
    assert first["tenant"] == "acme"
    assert first["subject"] == "Fire"
    assert first["data"]["title"] == "Fire"
    assert first["data"]["text"] == "Something is on fire"
    assert first["data"]["labels"] == {"alertname": "Fire", "severity": "critical"}
    assert first["data"]["raw"] == body["alerts"][0]
    assert rows[0][3] != rows[1][3]  # each alert its own dedupkey
    assert e.stop() == 0
    assert "normalize: stopped normalized=1 events=2 unparsed=0" in e.log()


def test_generic_source_fields_name_pointers(engine, tmp_path):
    e = engine(config())
    event_id = post(e, "gen", b'{"alert":{"name":"Queue backing up","id":"q-7"},'
                              b'"severity":"WARN","labels":{"queue":"billing"}}')
    assert wait_state(tmp_path / "hookline.db", event_id) == ("normalized", None)
    [(cid, ctype, sev, dedup, ev)] = canonical(tmp_path / "hookline.db", event_id)
    assert (cid, ctype, sev, dedup) == (event_id, "message", "warning", "q-7")
    assert ev["data"]["title"] == "Queue backing up"
    assert ev["data"]["labels"] == {"queue": "billing"}


def test_payload_that_does_not_fit_is_unparsed_and_kept(engine, tmp_path):
    e = engine(config())
    body = b'{"receiver":"x","status":"firing","alerts":"not a list"}'
    event_id = post(e, "am", body)
    state, reason = wait_state(tmp_path / "hookline.db", event_id)
    assert state == "unparsed"
    assert reason == "split: the payload has no list there (found another kind of value)"
    db = sqlite3.connect(tmp_path / "hookline.db")
    stored = db.execute("SELECT body FROM events WHERE id = ?", (event_id,)).fetchone()[0]
    assert db.execute("SELECT count(*) FROM canonical WHERE event_id = ?",
                      (event_id,)).fetchone()[0] == 0
    db.close()
    assert bytes(stored) == body
    assert "event unparsed; its raw body is kept" in e.log()


def test_events_waiting_at_start_are_normalized(engine, tmp_path):
    """Webhooks stored before a crash (still 'received') are normalized when
    the engine starts again."""
    e = engine(config())
    ids = [post(e, "gen", b'{"title":"t%d"}' % i) for i in range(5)]
    for i in ids:
        wait_state(tmp_path / "hookline.db", i)
    assert e.stop() == 0
    # As if the process died before the outcomes were committed: they and
    # the normalization cursor committed with them are gone.
    db = sqlite3.connect(tmp_path / "hookline.db")
    db.execute("UPDATE events SET state = 'received'")
    db.execute("DELETE FROM canonical")
    db.execute("UPDATE normalize_cursor SET seq = 0")
    db.commit()
    db.close()
    again = engine(config(), name="again.yaml")
    for i in ids:
        assert wait_state(tmp_path / "hookline.db", i) == ("normalized", None)
        assert len(canonical(tmp_path / "hookline.db", i)) == 1
    assert again.stop() == 0


def test_check_reports_mapping_errors_with_positions(tmp_path):
    schemas = tmp_path / "schemas"
    shutil.copytree(ROOT / "schemas", schemas)
    bad = schemas / "sources" / "generic.yaml"
    bad.write_text("kind: generic\nevent:\n  type: { pointer: nope }\n"
                   "  title: { frobnicate: 1 }\n")
    cfg = tmp_path / "hookline.yaml"
    cfg.write_text(config(schemas))
    p = run_cli("check", "-c", str(cfg))
    assert p.returncode == 1
    assert (f"{bad}:3:20: error: event.type.pointer: expected a JSON Pointer "
            "such as /alerts/0/labels") in p.stderr
    assert (f"{bad}:4:10: error: event.title: a spec needs one of: template, "
            "pointer, header, value, regex, lookup, first, hash, rules, lower") in p.stderr


def test_check_requires_a_mapping_for_every_kind(tmp_path):
    cfg = tmp_path / "hookline.yaml"
    cfg.write_text(config().replace("kind: alertmanager", "kind: nosuchkind"))
    p = run_cli("check", "-c", str(cfg))
    assert p.returncode == 1
    assert (f"{cfg}:9:11: error: sources.am.kind: no mapping for kind "
            "'nosuchkind': expected ") in p.stderr
    assert p.stderr.splitlines()[-1] == f"{cfg}: 1 error, 0 warnings"


def test_fixed_mapping_and_reload_normalize_unparsed_events(engine, tmp_path):
    """A mapping bug never loses a payload: after the mapping is fixed and
    hookline reloaded, the unparsed webhook becomes canonical events."""
    schemas = tmp_path / "schemas"
    shutil.copytree(ROOT / "schemas", schemas)
    generic = schemas / "sources" / "generic.yaml"
    good = generic.read_text()
    # A broken mapping: every event's severity comes out of its domain.
    generic.write_text(good.replace("default: { value: info }",
                                    "default: { value: catastrophic }"))
    e = engine(config(schemas))
    event_id = post(e, "gen", b'{"alert":{"name":"no severity here"}}')
    state, reason = wait_state(tmp_path / "hookline.db", event_id)
    assert state == "unparsed"
    assert "severity 'catastrophic' is not one of" in reason
    generic.write_text(good)
    e.send(signal.SIGHUP)
    e.wait_log(r"reloaded file=")
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        if wait_state(tmp_path / "hookline.db", event_id)[0] == "normalized":
            break
        time.sleep(0.1)
    assert wait_state(tmp_path / "hookline.db", event_id) == ("normalized", None)
    [(cid, ctype, sev, _, ev)] = canonical(tmp_path / "hookline.db", event_id)
    assert (cid, ctype, sev) == (event_id, "message", "info")
    assert ev["data"]["title"] == "no severity here"
    assert e.stop() == 0
