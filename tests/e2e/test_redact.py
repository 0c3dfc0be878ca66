"""Redaction as a user configures it: packs named by policies and by
storage.redact_at_rest, checked at load, applied before a body is stored."""
import json
import sqlite3

from conftest import run_cli

TOKEN = "redact-token"
GH_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def config(at_rest="[secrets]", policy_redact="[secrets, pii]"):
    return f"""\
server:
  listen: 127.0.0.1:0
storage:
  path: ./hookline.db
  redact_at_rest: {at_rest}
sources:
  gen:
    kind: generic
    verify: {{ bearer: {{ tokens: [{TOKEN}] }} }}
connectors:
  out:
    plugin: webhook
    url: https://hooks.example/in
    policy: careful
policies:
  careful:
    redact: {policy_redact}
routes:
  - to: [out]
"""


def test_redact_at_rest_stores_the_redacted_body(engine, tmp_path):
    e = engine(config())
    body = json.dumps({"title": "deploy failed",
                       "text": f"token {GH_TOKEN} and password=hunter2 leaked",
                       "labels": {"host": "db-7"}}).encode()
    status, _, raw = e.request("POST", "/v1/hooks/gen", body=body,
                               headers={"Authorization": f"Bearer {TOKEN}",
                                        "Content-Type": "application/json"})
    assert status == 202, raw
    event_id = json.loads(raw)["id"]
    assert e.stop() == 0
    db = sqlite3.connect(tmp_path / "hookline.db")
    stored = bytes(db.execute("SELECT body FROM events WHERE id = ?",
                              (event_id,)).fetchone()[0])
    db.close()
    assert GH_TOKEN.encode() not in stored
    assert b"hunter2" not in stored
    doc = json.loads(stored)
    assert doc["title"] == "deploy failed"
    assert doc["labels"] == {"host": "db-7"}
    assert doc["text"] == "token [REDACTED] and password=[REDACTED] leaked"


def test_body_without_secrets_is_stored_byte_for_byte(engine, tmp_path):
    e = engine(config())
    body = b'{ "title" : "nothing secret here",  "n": 1 }'
    status, _, raw = e.request("POST", "/v1/hooks/gen", body=body,
                               headers={"Authorization": f"Bearer {TOKEN}",
                                        "Content-Type": "application/json"})
    assert status == 202
    assert e.stop() == 0
    db = sqlite3.connect(tmp_path / "hookline.db")
    stored = bytes(db.execute("SELECT body FROM events").fetchone()[0])
    db.close()
    assert stored == body


def test_check_names_an_unknown_pack(tmp_path):
    cfg = tmp_path / "hookline.yaml"
    cfg.write_text(config(policy_redact="[secrets, creds]"))
    p = run_cli("check", "-c", str(cfg))
    assert p.returncode == 1
    assert "policies.careful.redact[1]" in p.stderr
    assert "unknown redaction pack 'creds'" in p.stderr
    assert p.stderr.splitlines()[-1] == f"{cfg}: 1 error, 0 warnings"


def test_check_accepts_the_shipped_packs(tmp_path):
    cfg = tmp_path / "hookline.yaml"
    cfg.write_text(config())
    p = run_cli("check", "-c", str(cfg))
    assert p.returncode == 0, p.stderr
