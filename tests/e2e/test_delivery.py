"""Delivery through the running engine: routes, the webhook connector, its
signatures checked independently, stored deliveries and attempts, retries,
tenants, redaction per destination, and kill -9 in the middle of it."""
import json
import re
import signal
import time

import pytest

from conftest import Engine, ROOT, assert_clean, db_rows, wait_rows
from sink import (AdnanhWebhook, Answer, Sink, github_signature,
                  verify_standard_webhooks, webhook_available)

TOKEN = "dlv-token"
WHSEC = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
WHSEC_NEXT = "whsec_bmV4dC1zZWNyZXQtZm9yLXJvdGF0aW9u"
HMAC_SECRET = "It's a Secret to Everybody"
GH_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"


def post(e, body, source="gen", token=TOKEN, headers=None):
    h = {"Authorization": f"Bearer {token}",
         "Content-Type": "application/json"}
    h.update(headers or {})
    status, hdrs, raw = e.request("POST", f"/v1/hooks/{source}",
                                  body=json.dumps(body).encode(), headers=h)
    assert status == 202, raw
    return json.loads(raw)["id"], hdrs


# The receivers in these tests are on loopback, which the SSRF guard refuses
# unless it is allowed.
LOOPBACK_ALLOWED = "outbound: { allow_networks: [127.0.0.0/8, '::1/128'] }\n"


def config(connectors, routes="  - to: [out]\n", policies="", extra=""):
    return f"""\
server:
  listen: 127.0.0.1:0
storage:
  path: ./hookline.db
{LOOPBACK_ALLOWED}log:
  level: debug
sources:
  gen:
    kind: generic
    verify: {{ bearer: {{ tokens: [{TOKEN}] }} }}
connectors:
{connectors}
routes:
{routes}
{policies}
{extra}"""


def webhook_connector(url, name="out", more="", timeout="2s"):
    return f"""\
  {name}:
    plugin: webhook
    url: {url}
    timeout: {timeout}
{more}"""


def test_signed_delivery_checked_independently(engine, tmp_path):
    with Sink() as sink:
        e = engine(config(webhook_connector(sink.url(), more=f"""\
    signing:
      standard_webhooks: {{ secrets: [{WHSEC}, {WHSEC_NEXT}] }}
      hmac: {{ secret: "{HMAC_SECRET}" }}
""")))
        event_id, hdrs = post(e, {"title": "disk full", "severity": "critical",
                                  "labels": {"host": "db-1"}},
                              headers={"X-Request-ID": "corr-123"})
        req = sink.wait_for(1)[0]
        assert req.method == "POST" and req.path == "/hook"
        assert req.headers["content-type"] == "application/json"
        # Both secrets sign; the independent checker accepts either.
        assert verify_standard_webhooks(WHSEC, req.headers, req.body)
        assert verify_standard_webhooks(WHSEC_NEXT, req.headers, req.body)
        assert len(req.headers["webhook-signature"].split(" ")) == 2
        assert req.headers["x-hub-signature-256"] == github_signature(
            HMAC_SECRET, req.body)
        ev = req.json()
        assert ev["specversion"] == "1.0"
        assert ev["data"]["title"] == "disk full"
        assert ev["severity"] == "critical"
        assert ev["data"]["raw"]["labels"] == {"host": "db-1"}
        assert req.headers["x-request-id"] == "corr-123"
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT state, attempts FROM deliveries", [("delivered", 1)])
        (dlv_id, canon_id, connector, route), = db_rows(
            db, "SELECT id, canonical_id, connector, route FROM deliveries")
        assert connector == "out"
        assert canon_id == ev["id"]
        # The delivery id is the idempotency key and the Standard Webhooks id.
        assert req.headers["idempotency-key"] == dlv_id
        assert req.headers["webhook-id"] == dlv_id
        (status, outcome, response), = wait_rows(
            db, "SELECT status, outcome, response FROM attempts",
            [(200, "delivered", '{"ok":true}')])
        assert e.stop() == 0


def test_template_body_headers_and_basic_auth(engine):
    with Sink() as sink:
        e = engine(config(webhook_connector(sink.url("/in"), more="""\
    method: PUT
    body: '{"msg": "[{{severity}}] {{data.title}}", "host": "{{data.labels.host}}"}'
    headers: { X-Team: ops }
    auth: { basic: "bot:s3cret" }
""")))
        post(e, {"title": 'quote " and \\ back', "severity": "warning",
                 "labels": {"host": "web-2"}})
        req = sink.wait_for(1)[0]
        assert req.method == "PUT" and req.path == "/in"
        assert req.json() == {"msg": '[warning] quote " and \\ back',
                              "host": "web-2"}
        assert req.headers["x-team"] == "ops"
        assert req.headers["authorization"] == "Basic Ym90OnMzY3JldA=="
        assert "webhook-signature" not in req.headers
        assert e.stop() == 0


@pytest.mark.skipif(not webhook_available(), reason="Debian package webhook")
def test_outside_receiver_checks_the_hmac_signature(engine, tmp_path):
    """adnanh/webhook with a payload-hmac-sha256 trigger rule runs its
    command only for a correctly signed body; a wrong secret gets 500 from
    it, which hookline records and retries."""
    with AdnanhWebhook(HMAC_SECRET) as good, AdnanhWebhook("other") as bad:
        e = engine(config(
            webhook_connector(good.url, "good",
                              f'    signing: {{ hmac: {{ secret: "{HMAC_SECRET}" }} }}\n')
            + webhook_connector(bad.url, "bad",
                                f'    signing: {{ hmac: {{ secret: "{HMAC_SECRET}" }} }}\n'
                                "    policy: once\n"),
            routes="  - to: [good, bad]\n",
            policies="policies:\n  once:\n    retry: { schedule: [0s, 1h] }\n"))
        post(e, {"title": "signed for the outside"})
        payload = good.wait_received(1)[0]
        assert payload["data"]["title"] == "signed for the outside"
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT connector, state FROM deliveries ORDER BY connector",
                  [("bad", "retrying"), ("good", "delivered")])
        (status, outcome, cls), = db_rows(
            db, "SELECT a.status, a.outcome, a.error_class FROM attempts a "
                "JOIN deliveries d ON d.id = a.delivery_id WHERE d.connector = 'bad'")
        assert (status, outcome, cls) == (500, "retry", "http_5xx")
        assert bad.received() == []
        assert e.stop() == 0


def test_retry_keeps_the_idempotency_key(engine, tmp_path):
    with Sink() as sink:
        sink.script([Answer(503, b"busy"), Answer(500, b"oops")])
        e = engine(config(webhook_connector(sink.url()) + "    policy: fast\n",
                          policies="policies:\n  fast:\n    retry: { schedule: [0s, 100ms, 100ms, 100ms], jitter: 0 }\n"))
        post(e, {"title": "flaky"})
        reqs = sink.wait_for(3)
        assert [r.answer_status for r in reqs] == [503, 500, 200]
        keys = {r.headers["idempotency-key"] for r in reqs}
        assert len(keys) == 1
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT state, attempts FROM deliveries", [("delivered", 3)])
        rows = db_rows(db, "SELECT attempt, status, outcome, response FROM attempts ORDER BY seq")
        assert rows == [(1, 503, "retry", "busy"), (2, 500, "retry", "oops"),
                        (3, 200, "delivered", '{"ok":true}')]
        assert e.stop() == 0


def test_client_error_fails_with_the_reason(engine, tmp_path):
    with Sink() as sink:
        sink.respond(422, b'{"error":"missing field"}',
                     {"Content-Type": "application/json"})
        e = engine(config(webhook_connector(sink.url())))
        post(e, {"title": "rejected"})
        sink.wait_for(1)
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT state, last_status, last_error FROM deliveries",
                  [("failed", 422, "HTTP 422")])
        (cls, resp), = db_rows(db, "SELECT error_class, response FROM attempts")
        assert (cls, resp) == ("http_4xx", '{"error":"missing field"}')
        time.sleep(0.3)
        assert len(sink.requests) == 1  # not retried
        assert e.stop() == 0


def test_refused_connection_is_retried(engine, tmp_path):
    sink = Sink()
    url = sink.url()
    sink.close()  # nothing listens there now
    e = engine(config(webhook_connector(url)))
    post(e, {"title": "nobody home"})
    db = tmp_path / "hookline.db"
    wait_rows(db, "SELECT state FROM deliveries", [("retrying",)])
    (cls, status), = db_rows(db, "SELECT error_class, status FROM attempts")
    assert (cls, status) == ("refused", None)
    assert e.stop() == 0


def test_routes_tenants_and_unrouted(engine, tmp_path):
    with Sink() as a, Sink() as b:
        cfg = f"""\
server:
  listen: 127.0.0.1:0
storage:
  path: ./hookline.db
{LOOPBACK_ALLOWED}tenants:
  acme: {{ token: acme-token }}
  beta: {{ token: beta-token }}
sources:
  acme-src:
    tenant: acme
    kind: generic
    verify: {{ bearer: {{ tokens: [{TOKEN}] }} }}
  beta-src:
    tenant: beta
    kind: generic
    verify: {{ bearer: {{ tokens: [{TOKEN}] }} }}
connectors:
  acme-out:
    plugin: webhook
    tenant: acme
    url: {a.url()}
  beta-out:
    plugin: webhook
    tenant: beta
    url: {b.url()}
routes:
  - name: critical-everywhere
    match: {{ severity: [critical] }}
    to: [acme-out, beta-out]
    continue: true
  - name: acme-alerts
    match: {{ source: acme-src, type: "alert.*" }}
    to: [acme-out]
"""
        e = engine(cfg)
        post(e, {"title": "acme crit", "severity": "critical"}, source="acme-src")
        post(e, {"title": "beta crit", "severity": "critical"}, source="beta-src")
        post(e, {"title": "acme fire", "type": "alert.firing"}, source="acme-src")
        quiet, _ = post(e, {"title": "nobody wants this"}, source="beta-src")
        got_a = sorted(r.json()["data"]["title"] for r in a.wait_for(2))
        got_b = sorted(r.json()["data"]["title"] for r in b.wait_for(1))
        assert got_a == ["acme crit", "acme fire"]
        assert got_b == ["beta crit"]
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT count(*) FROM deliveries WHERE state = 'delivered'", [(3,)])
        routes = dict(db_rows(db, "SELECT c.event_id, c.route FROM canonical c"))
        assert routes[quiet] is None  # recorded as unrouted
        assert db_rows(db, "SELECT count(*) FROM deliveries d JOIN canonical c "
                           "ON c.id = d.canonical_id WHERE c.event_id = ?",
                       (quiet,)) == [(0,)]
        time.sleep(0.2)
        assert len(a.requests) == 2 and len(b.requests) == 1
        assert e.stop() == 0
        assert "unrouted=1" in e.log() or '"unrouted":"1"' in e.log()


def test_redaction_per_destination(engine):
    """The same event: masked for the connector whose policy redacts,
    untouched for the one whose policy does not."""
    with Sink() as careful, Sink() as plain:
        e = engine(config(
            webhook_connector(careful.url(), "careful", "    policy: masked\n")
            + webhook_connector(plain.url(), "plain"),
            routes="  - to: [careful, plain]\n",
            policies="policies:\n  masked:\n    redact: [secrets]\n"))
        post(e, {"title": "leak", "text": f"token {GH_TOKEN} in the log"})
        masked = careful.wait_for(1)[0].json()
        clear = plain.wait_for(1)[0].json()
        assert GH_TOKEN not in json.dumps(masked)
        assert masked["data"]["text"] == "token [REDACTED] in the log"
        assert masked["data"]["raw"]["text"] == "token [REDACTED] in the log"
        assert clear["data"]["text"] == f"token {GH_TOKEN} in the log"
        assert e.stop() == 0


def test_reload_points_a_connector_elsewhere(engine):
    with Sink() as first, Sink() as second:
        e = engine(config(webhook_connector(first.url())))
        post(e, {"title": "one"})
        first.wait_for(1)
        e.config_path.write_text(config(webhook_connector(second.url())))
        mark = len(e.log())
        e.send(signal.SIGHUP)
        e.wait_log("reloaded", start=mark)
        post(e, {"title": "two"})
        assert second.wait_for(1)[0].json()["data"]["title"] == "two"
        assert len(first.requests) == 1
        assert e.stop() == 0


def test_kill_during_dispatch_delivers_everything(tmp_path):
    """kill -9 while deliveries are in flight: after a restart every event
    reaches the sink, and any duplicate carries the same idempotency key."""
    n = 40
    with Sink() as sink:
        sink.respond(200, b"{}", delay=0.15)  # slow, so some are in flight
        path = tmp_path / "hookline.yaml"
        path.write_text(config(webhook_connector(sink.url(), timeout="1s")))
        e = Engine(path, cwd=tmp_path).start()
        ids = [post(e, {"title": f"event {i}"})[0] for i in range(n)]
        sink.wait_for(3)
        e.proc.send_signal(signal.SIGKILL)
        e.proc.wait()
        e.log_file.close()
        assert_clean(e.log())
        before = len(sink.requests)
        assert before < n, "everything was delivered before the kill"
        sink.respond(200, b"{}")
        e2 = Engine(path, cwd=tmp_path).start()
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
                  [(n,)], timeout=30)
        reqs = sink.requests
        keys = {}
        for r in reqs:
            keys.setdefault(r.headers["idempotency-key"], set()).add(
                r.json()["data"]["title"])
        # One key per delivery; a key sent twice is the same event.
        assert len(keys) == n
        assert all(len(titles) == 1 for titles in keys.values())
        dlv = {row[0] for row in db_rows(db, "SELECT id FROM deliveries")}
        assert set(keys) == dlv
        events = {row[0] for row in db_rows(
            db, "SELECT c.event_id FROM deliveries d JOIN canonical c ON c.id = d.canonical_id")}
        assert events == set(ids)
        assert e2.stop() == 0


def test_shutdown_gives_back_what_is_in_flight(engine, tmp_path):
    with Sink() as sink:
        sink.respond(200, b"{}", delay=30)
        e = engine(config(webhook_connector(sink.url(), timeout="60s")))
        post(e, {"title": "stuck"})
        sink.wait_for(1)
        assert e.stop() == 0
        db = tmp_path / "hookline.db"
        (state, attempts), = db_rows(db, "SELECT state, attempts FROM deliveries")
        assert (state, attempts) == ("queued", 0)
        assert db_rows(db, "SELECT count(*) FROM attempts") == [(0,)]


# ---- TLS, proxies --------------------------------------------------------

TLS = ROOT / "tests" / "data" / "tls"


class TLSReceiver:
    """An HTTPS receiver on 127.0.0.1 with the test server certificate;
    with require_client it demands a client certificate from the test CA.
    Records (path, client certificate subject, body)."""

    def __init__(self, require_client=True):
        import http.server
        import ssl
        import threading
        got = self.got = []

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                cert = self.connection.getpeercert() or {}
                subject = dict(x[0] for x in cert.get("subject", ()))
                got.append((self.path, subject.get("commonName"), body))
                self.send_response(200)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.load_cert_chain(TLS / "server.pem", TLS / "server.key")
        if require_client:
            ctx.verify_mode = ssl.CERT_REQUIRED
            ctx.load_verify_locations(TLS / "ca.pem")
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.socket = ctx.wrap_socket(self.httpd.socket, server_side=True)
        self.port = self.httpd.server_address[1]
        self.thread = threading.Thread(target=self.httpd.serve_forever,
                                       daemon=True)
        self.thread.start()

    def close(self):
        self.httpd.shutdown()
        self.httpd.server_close()


def test_mutual_tls_with_a_client_certificate(engine, tmp_path):
    rx = TLSReceiver(require_client=True)
    try:
        e = engine(config(
            webhook_connector(f"https://127.0.0.1:{rx.port}/mtls", "mtls", f"""\
    tls:
      client_cert: {TLS / 'client.pem'}
      client_key: {TLS / 'client.key'}
      ca_file: {TLS / 'ca.pem'}
""") + webhook_connector(f"https://127.0.0.1:{rx.port}/nocert", "nocert", f"""\
    tls: {{ ca_file: {TLS / 'ca.pem'} }}
""") + webhook_connector(f"https://127.0.0.1:{rx.port}/untrusted", "untrusted"),
            routes="  - to: [mtls, nocert, untrusted]\n"))
        post(e, {"title": "over mutual TLS"})
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT connector, state FROM deliveries ORDER BY connector",
                  [("mtls", "delivered"), ("nocert", "retrying"),
                   ("untrusted", "retrying")])
        assert [(p, cn) for p, cn, _ in rx.got] == [("/mtls", "hookline test client")]
        assert json.loads(rx.got[0][2])["data"]["title"] == "over mutual TLS"
        classes = dict(db_rows(db, "SELECT d.connector, a.error_class FROM attempts a "
                                   "JOIN deliveries d ON d.id = a.delivery_id "
                                   "WHERE d.connector != 'mtls'"))
        # The system's CAs do not know the test CA: verification is on.
        assert classes["untrusted"] == "tls"
        # Without a client certificate the server ends the connection: with
        # TLS 1.3 that comes after the handshake, as an alert or a reset.
        assert classes["nocert"] in ("tls", "reset")
        assert e.stop() == 0
    finally:
        rx.close()


def test_proxy_from_the_environment(engine):
    """http_proxy is honoured as libcurl reads it: the request goes to the
    proxy with the destination in its target."""
    with Sink() as proxy:
        e = engine(config(webhook_connector("http://hooks.partner.example/in")),
                   env={"http_proxy": proxy.url(""), "no_proxy": ""})
        post(e, {"title": "via the proxy"})
        req = proxy.wait_for(1)[0]
        assert req.target == "http://hooks.partner.example/in"
        assert req.json()["data"]["title"] == "via the proxy"
        assert e.stop() == 0


# ---- holding a connector: 410, pause, resume ------------------------------

ADMIN = "admin-secret"


def admin(e, path, token=ADMIN):
    h = {"Authorization": f"Bearer {token}"} if token else {}
    status, _, raw = e.request("POST", path, body=b"", headers=h)
    return status, json.loads(raw)


def test_gone_disables_until_resumed_even_across_restarts(tmp_path):
    with Sink() as sink:
        sink.script([Answer(410, b"gone")])
        path = tmp_path / "hookline.yaml"
        path.write_text(config(webhook_connector(sink.url()),
                               extra=f"admin: {{ token: {ADMIN} }}\n"))
        e = Engine(path, cwd=tmp_path).start()
        post(e, {"title": "first"})
        e.wait_log(r"connector disabled.*connector=out")
        post(e, {"title": "second"})
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT state, attempts FROM deliveries ORDER BY seq",
                  [("retrying", 1), ("queued", 0)])
        time.sleep(0.5)
        assert len(sink.requests) == 1
        assert e.stop() == 0
        # Held across a restart, until an operator resumes it.
        e = Engine(path, cwd=tmp_path).start()
        e.wait_log(r"held since before the restart.*connector=out.*state=disabled")
        time.sleep(0.5)
        assert len(sink.requests) == 1
        assert admin(e, "/v1/connectors/out/resume") == (
            200, {"connector": "out", "state": "active"})
        got = sorted(r.json()["data"]["title"] for r in sink.wait_for(3)[1:])
        assert got == ["first", "second"]
        wait_rows(db, "SELECT state FROM deliveries ORDER BY seq",
                  [("delivered",), ("delivered",)])
        assert e.stop() == 0


def test_pause_and_resume(engine, tmp_path):
    with Sink() as sink:
        e = engine(config(webhook_connector(sink.url()),
                          extra=f"admin: {{ token: {ADMIN} }}\n"))
        assert admin(e, "/v1/connectors/out/pause") == (
            200, {"connector": "out", "state": "paused"})
        post(e, {"title": "waits"})
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT state, attempts FROM deliveries", [("queued", 0)])
        time.sleep(0.5)
        assert sink.requests == []
        assert admin(e, "/v1/connectors/out/resume")[0] == 200
        assert sink.wait_for(1)[0].json()["data"]["title"] == "waits"
        # Refusals: wrong token, unknown connector, unknown verb, GET.
        status, body = admin(e, "/v1/connectors/out/pause", token="nope")
        assert (status, body["error"]["code"]) == (401, "unauthorized")
        status, body = admin(e, "/v1/connectors/nosuch/pause")
        assert status == 404 and "no connector named 'nosuch'" in body["error"]["message"]
        status, body = admin(e, "/v1/connectors/out/explode")
        assert status == 404
        status, _, _ = e.request("GET", "/v1/connectors/out/pause")
        assert status == 405
        assert e.stop() == 0


def test_admin_api_off_without_a_token(engine):
    with Sink() as sink:
        e = engine(config(webhook_connector(sink.url())))
        status, body = admin(e, "/v1/connectors/out/pause")
        assert status == 403
        assert "set admin.token" in body["error"]["message"]
        assert e.stop() == 0


def test_response_excerpts_are_redacted(engine, tmp_path):
    """What a destination answers is stored with the attempt after the
    policy's redaction, or the secrets pack when the policy has none."""
    with Sink() as a, Sink() as b:
        leak = f'{{"error":"bad token","echo":"Authorization: Bearer {GH_TOKEN}"}}'
        a.respond(400, leak.encode())
        b.respond(400, f"card 4111 1111 1111 1111 and {GH_TOKEN}".encode())
        e = engine(config(
            webhook_connector(a.url(), "plain")
            + webhook_connector(b.url(), "masked", "    policy: pii\n"),
            routes="  - to: [plain, masked]\n",
            policies="policies:\n  pii:\n    redact: [secrets, pii]\n"))
        post(e, {"title": "x"})
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT count(*) FROM attempts", [(2,)])
        rows = dict(db_rows(db, "SELECT d.connector, a.response FROM attempts a "
                                "JOIN deliveries d ON d.id = a.delivery_id"))
        assert GH_TOKEN not in rows["plain"] and "[REDACTED]" in rows["plain"]
        assert rows["masked"] == "card [REDACTED] and [REDACTED]"
        assert e.stop() == 0


def test_circuit_changes_are_counted(engine, tmp_path):
    with Sink() as sink:
        sink.respond(503)
        e = engine(config(webhook_connector(sink.url()) + "    policy: brittle\n",
                          policies="policies:\n  brittle:\n"
                                   "    retry: { schedule: [0s, 10ms], max_attempts: 50, jitter: none }\n"
                                   "    circuit: { failures: 2, cooldown: 200ms }\n"))
        post(e, {"title": "x"})
        e.wait_log(r"circuit open")
        sink.respond(200)
        e.wait_log(r"circuit closed")
        assert e.stop() == 0
        assert re.search(r"circuit_opened=[1-9]\d* circuit_closed=1", e.log())


def test_a_group_of_alerts_is_delivered_one_by_one(engine, tmp_path):
    """An Alertmanager group of N alerts becomes N canonical events (ids
    ULID-0, ULID-1, ...), each delivered."""
    fixture = ROOT.parent / "shared/fixtures/inbound/alertmanager__firing.json"
    group = json.loads(fixture.read_text())
    second = json.loads(json.dumps(group["alerts"][0]))
    second["labels"]["alertname"] = "Flood"
    group["alerts"].append(second)
    with Sink() as sink:
        e = engine(config(webhook_connector(sink.url())).replace(
            "  gen:\n    kind: generic\n", "  gen:\n    kind: alertmanager\n"))
        post(e, group)
        got = sorted(r.json()["data"]["labels"]["alertname"]
                     for r in sink.wait_for(2))
        assert got == ["Fire", "Flood"]
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT state FROM deliveries", [("delivered",), ("delivered",)])
        assert e.stop() == 0


def test_reload_with_a_bad_plugin_keeps_the_running_connectors(engine):
    with Sink() as sink:
        good = config(webhook_connector(sink.url()))
        e = engine(good)
        e.config_path.write_text(good.replace("plugin: webhook", "plugin: nosuch"))
        mark = len(e.log())
        e.send(signal.SIGHUP)
        e.wait_log(r"reload failed; the running configuration is unchanged",
                   start=mark)
        assert "no connector plugin 'nosuch'" in e.log()[mark:]
        post(e, {"title": "still delivered"})
        assert sink.wait_for(1)[0].json()["data"]["title"] == "still delivered"
        assert e.stop() == 0
