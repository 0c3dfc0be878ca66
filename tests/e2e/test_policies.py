"""Delivery policies through the running engine: the SSRF guard
(outbound.allow_networks), retry schedules and Retry-After, how each kind of
failure is classed, 410, the circuit breaker, rate shaping, fairness between
tenants, isolation between connectors and max_age.

Every test looks at what a user sees: the deliveries and attempts rows in
the SQLite file, the requests at a scriptable sink (tests/e2e/sink.py) and
the log. Timing is asserted with generous tolerances only: a lower bound
close to the configured delay, an upper bound about a second above it."""
import email.utils
import json
import math
import re
import socket
import threading
import time

from conftest import db_rows, wait_rows
from sink import Answer, Close, Hang, Reset, Sink

TOKEN = "pol-token"
LOOPBACK = "127.0.0.0/8"
GUARD_ADVICE = "add it to outbound.allow_networks to allow it"
ADMIN_TOKEN = "policies-admin-token-0123456789"
ADMIN = f"admin:\n  token: {ADMIN_TOKEN}\n"


# ---- helpers -------------------------------------------------------------

def post(e, body, source="gen", token=TOKEN):
    h = {"Authorization": f"Bearer {token}",
         "Content-Type": "application/json"}
    status, _, raw = e.request("POST", f"/v1/hooks/{source}",
                               body=json.dumps(body).encode(), headers=h)
    assert status == 202, raw
    return json.loads(raw)["id"]


def post_many(e, bodies, source="gen", token=TOKEN):
    """Post every body on one keep-alive connection, pipelined (written at
    once, answers read after), so the engine holds them all well before it
    may send them, however loaded the machine; returns the event ids in
    the order of bodies."""
    out = bytearray()
    for b in bodies:
        raw = json.dumps(b).encode()
        out += (f"POST /v1/hooks/{source} HTTP/1.1\r\n"
                f"Host: 127.0.0.1:{e.port}\r\n"
                f"Authorization: Bearer {token}\r\n"
                "Content-Type: application/json\r\n"
                f"Content-Length: {len(raw)}\r\n\r\n").encode() + raw
    ids = []
    with socket.create_connection(("127.0.0.1", e.port), timeout=30) as sock:
        sock.sendall(out)
        rfile = sock.makefile("rb")
        for _ in bodies:
            status = int(rfile.readline().split()[1])
            length = 0
            while (line := rfile.readline()) not in (b"\r\n", b"\n", b""):
                name, _, value = line.decode("latin-1").partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value)
            body = rfile.read(length)
            assert status == 202, body
            ids.append(json.loads(body)["id"])
    return ids


def attempt_rows(db, connector=None):
    """Attempts as dicts, in the order they started."""
    sql = ("SELECT a.delivery_id, a.attempt, a.started_at, a.duration_ms, "
           "a.status, a.outcome, a.error_class, a.reason, d.connector "
           "FROM attempts a JOIN deliveries d ON d.id = a.delivery_id")
    args = ()
    if connector:
        sql += " WHERE d.connector = ?"
        args = (connector,)
    sql += " ORDER BY a.started_at, a.seq"
    keys = ("delivery", "attempt", "started", "duration", "status",
            "outcome", "error_class", "reason", "connector")
    return [dict(zip(keys, r)) for r in db_rows(db, sql, args)]


def log_lines(e, *needles):
    """Log lines holding every one of needles."""
    return [line for line in e.log().splitlines()
            if all(n in line for n in needles)]


def wait_log_lines(e, *needles, count=1, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        got = log_lines(e, *needles)
        if len(got) >= count:
            return got
        time.sleep(0.02)
    raise AssertionError(f"fewer than {count} log line(s) with {needles!r}:\n"
                         f"{e.log()}")


def names_connector(line, name):
    """A text or JSON log line naming connector `name` as a field."""
    return (re.search(rf"\bconnector={re.escape(name)}(\s|$)", line)
            or f'"connector":"{name}"' in line)


def config(connectors, routes="  - to: [out]\n", policies="",
           allow=(LOOPBACK,), sources=None, tenants="", extra=""):
    """A configuration on a free port. allow: outbound.allow_networks (None:
    no outbound section at all, so nothing private may be reached)."""
    outbound = ""
    if allow is not None:
        outbound = ("outbound:\n  allow_networks: ["
                    + ", ".join(allow) + "]\n")
    if sources is None:
        sources = f"""\
  gen:
    kind: generic
    verify: {{ bearer: {{ tokens: [{TOKEN}] }} }}
"""
    return f"""\
server:
  listen: 127.0.0.1:0
storage:
  path: ./hookline.db
  durability: normal
log:
  level: debug
{outbound}{tenants}sources:
{sources}connectors:
{connectors}
routes:
{routes}
{policies}
{extra}"""


def webhook_connector(url, name="out", policy=None, timeout="2s", more=""):
    pol = f"    policy: {policy}\n" if policy else ""
    return f"""\
  {name}:
    plugin: webhook
    url: "{url}"
    timeout: {timeout}
{pol}{more}"""


def policy(name, body):
    """One policy under `policies:`; body is its YAML, indented 4."""
    return f"  {name}:\n" + "".join(f"    {line}\n"
                                     for line in body.strip().splitlines())


def policies(*items):
    return "policies:\n" + "".join(items)


def gaps(rows):
    return [b["started"] - a["started"] for a, b in zip(rows, rows[1:])]


# ---- the SSRF guard ------------------------------------------------------

# (connector name, url, the address as the guard names it, words of its
# class as engine/netguard.c writes them)
BLOCKED = [
    ("lo4", "http://127.0.0.1:9/x", "127.0.0.1",
     ["a loopback address", "127.0.0.0/8"]),
    ("lo6", "http://[::1]:9/", "::1", ["a loopback address", "::1/128"]),
    ("priv10", "http://10.1.2.3/", "10.1.2.3",
     ["a private address", "10.0.0.0/8"]),
    ("priv172", "http://172.16.0.1/", "172.16.0.1",
     ["a private address", "172.16.0.0/12"]),
    ("priv192", "http://192.168.1.1/", "192.168.1.1",
     ["a private address", "192.168.0.0/16"]),
    ("metadata", "http://169.254.169.254/latest/meta-data",
     "169.254.169.254", ["a cloud metadata address", "169.254.169.254/32"]),
    ("linklocal", "http://169.254.10.10/", "169.254.10.10",
     ["a link-local address", "169.254.0.0/16"]),
    ("cgnat", "http://100.64.0.1/", "100.64.0.1",
     ["carrier-grade NAT", "shared", "100.64.0.0/10"]),
    ("multicast", "http://224.0.0.1/", "224.0.0.1",
     ["a multicast address", "224.0.0.0/4"]),
    ("unspecified", "http://0.0.0.0/", "0.0.0.0",
     ["an unspecified address", "0.0.0.0/32"]),
    ("mapped", "http://[::ffff:127.0.0.1]/", "::ffff:127.0.0.1",
     ["IPv4-mapped", "for 127.0.0.1", "a loopback address", "127.0.0.0/8"]),
    ("ula", "http://[fd00::1]/", "fd00::1",
     ["unique local", "fc00::/7"]),
    ("linklocal6", "http://[fe80::1]/", "fe80::1",
     ["a link-local address", "fe80::/10"]),
]


def test_ssrf_guard_blocks_every_special_address(engine, tmp_path):
    """Without outbound.allow_networks nothing private is reached: each
    attempt is 'blocked', the delivery 'failed' at once (no retry), and the
    reason names the address and its class. A live loopback sink sees no
    connection at all."""
    with Sink() as sink:
        targets = BLOCKED + [("live", sink.url("/live"), "127.0.0.1",
                              ["a loopback address", "127.0.0.0/8"])]
        names = [t[0] for t in targets]
        e = engine(config(
            "".join(webhook_connector(url, name, timeout="1s")
                    for name, url, _, _ in targets),
            routes=f"  - to: [{', '.join(names)}]\n", allow=None))
        post(e, {"title": "to nowhere private"})
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT count(*) FROM deliveries WHERE state IN "
                      "('failed', 'delivered', 'retrying', 'expired')",
                  [(len(targets),)])
        time.sleep(0.3)  # a wrongly scheduled retry would show up here
        rows = {r["connector"]: r for r in attempt_rows(db)}
        dlv = {c: (s, n, st, err) for c, s, n, st, err in db_rows(
            db, "SELECT connector, state, attempts, last_status, last_error "
                "FROM deliveries")}
        problems = []
        for name, url, addr, words in targets:
            r = rows.get(name)
            state, n, status, last_error = dlv[name]
            got = (state, n, status, r and r["outcome"], r and r["error_class"])
            if got != ("failed", 1, None, "failed", "blocked"):
                problems.append(f"{name} ({url}): state, attempts, status, "
                                f"outcome, class = {got}; reason "
                                f"{r and r['reason']!r}")
                continue
            reason = r["reason"] or ""
            for needle in [f"{addr} is ", GUARD_ADVICE] + words:
                if needle not in reason:
                    problems.append(f"{name}: reason {reason!r} lacks {needle!r}")
            if not last_error or GUARD_ADVICE not in last_error:
                problems.append(f"{name}: last_error {last_error!r}")
        assert not problems, "\n".join(problems)
        # The exact sentence for the common case.
        assert ("127.0.0.1 is a loopback address (127.0.0.0/8); add it to "
                "outbound.allow_networks to allow it") in rows["lo4"]["reason"]
        assert db_rows(db, "SELECT count(*) FROM attempts") == [(len(targets),)]
        assert sink.connections == 0 and sink.requests == []
        assert e.stop() == 0


def test_allowed_network_is_reached_and_nothing_else(engine, tmp_path):
    """allow_networks [127.0.0.0/8] lets a loopback sink receive the event;
    ::1 and 10.1.2.3 stay blocked."""
    with Sink() as sink:
        e = engine(config(
            webhook_connector(sink.url(), "local")
            + webhook_connector("http://[::1]:9/", "lo6", timeout="1s")
            + webhook_connector("http://10.1.2.3/", "priv", timeout="1s"),
            routes="  - to: [local, lo6, priv]\n", allow=[LOOPBACK]))
        post(e, {"title": "allowed"})
        assert sink.wait_for(1)[0].json()["data"]["title"] == "allowed"
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT connector, state FROM deliveries ORDER BY connector",
                  [("lo6", "failed"), ("local", "delivered"), ("priv", "failed")])
        classes = {r["connector"]: (r["outcome"], r["error_class"])
                   for r in attempt_rows(db)}
        assert classes == {"local": ("delivered", None),
                           "lo6": ("failed", "blocked"),
                           "priv": ("failed", "blocked")}
        assert e.stop() == 0


def test_redirects_are_not_followed(engine, tmp_path):
    """A 302 is the final answer: one request at the sink, none at the
    Location (a second loopback sink stands in for it), the delivery
    'failed' with last_status 302."""
    with Sink() as sink, Sink() as elsewhere:
        sink.respond_on("/meta", 302, b"", {"Location": "http://169.254.169.254/"})
        sink.respond_on("/away", 302, b"", {"Location": elsewhere.url("/stolen")})
        e = engine(config(
            webhook_connector(sink.url("/meta"), "to-meta")
            + webhook_connector(sink.url("/away"), "to-elsewhere"),
            routes="  - to: [to-meta, to-elsewhere]\n"))
        post(e, {"title": "redirected"})
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT connector, state, attempts, last_status FROM "
                      "deliveries ORDER BY connector",
                  [("to-elsewhere", "failed", 1, 302),
                   ("to-meta", "failed", 1, 302)])
        time.sleep(0.4)
        assert sorted(r.path for r in sink.requests) == ["/away", "/meta"]
        assert elsewhere.connections == 0 and elsewhere.requests == []
        rows = attempt_rows(db)
        assert [(r["status"], r["outcome"]) for r in rows] == [(302, "failed")] * 2
        assert all(r["error_class"] != "blocked" for r in rows)
        assert e.stop() == 0


# ---- retry schedules and Retry-After ---------------------------------------

def test_retry_schedule_then_failed(engine, tmp_path):
    with Sink() as sink:
        sink.script([503, 503, 503])
        e = engine(config(
            webhook_connector(sink.url(), policy="sched"),
            policies=policies(policy("sched", """
retry: { schedule: [0s, 300ms, 600ms], jitter: none }"""))))
        post(e, {"title": "three tries"})
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT state, attempts, last_status FROM deliveries",
                  [("failed", 3, 503)])
        rows = attempt_rows(db)
        assert [(r["attempt"], r["status"], r["outcome"]) for r in rows] == [
            (1, 503, "retry"), (2, 503, "retry"), (3, 503, "failed")]
        g = gaps(rows)
        assert 240 <= g[0] <= 1300, g
        assert 480 <= g[1] <= 1600, g
        time.sleep(0.8)  # longer than the schedule's last delay
        assert len(sink.requests) == 3
        assert e.stop() == 0


def test_exponential_backoff_capped_at_max(engine, tmp_path):
    with Sink() as sink:
        sink.respond(503, b"busy")
        e = engine(config(
            webhook_connector(sink.url(), policy="expo"),
            policies=policies(policy("expo", """
retry: { exponential: { base: 200ms, factor: 4, max: 400ms }, max_attempts: 4, jitter: none }"""))))
        post(e, {"title": "backing off"})
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT state, attempts FROM deliveries", [("failed", 4)])
        rows = attempt_rows(db)
        assert [r["outcome"] for r in rows] == ["retry"] * 3 + ["failed"]
        g = gaps(rows)
        assert 160 <= g[0] <= 1200, g
        assert 320 <= g[1] <= 1400, g
        assert 320 <= g[2] <= 1400, g  # capped at max, not 3200 ms
        time.sleep(0.6)
        assert len(sink.requests) == 4
        assert e.stop() == 0


def test_retry_after_seconds_is_honoured_over_a_shorter_delay(engine, tmp_path):
    """429 with Retry-After: 2 while the schedule says 100 ms: the second
    attempt waits for the destination (the schedule's largest delay, 3 s,
    allows it)."""
    with Sink() as sink:
        sink.script([Answer(429, b"slow down", {"Retry-After": "2"})])
        e = engine(config(
            webhook_connector(sink.url(), policy="ra"),
            policies=policies(policy("ra", """
retry: { schedule: [0s, 100ms, 3s], jitter: none }"""))))
        post(e, {"title": "told to wait"})
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT state, attempts FROM deliveries", [("delivered", 2)])
        rows = attempt_rows(db)
        assert [(r["status"], r["outcome"]) for r in rows] == [
            (429, "retry"), (200, "delivered")]
        g = gaps(rows)[0]
        assert 1800 <= g <= 3000, g
        assert e.stop() == 0


def test_retry_after_is_capped_by_the_largest_delay(engine, tmp_path):
    """Retry-After: 30 with a schedule whose largest delay is 1 s: the
    second attempt comes after about 1 s, not 30 s."""
    with Sink() as sink:
        sink.script([Answer(429, b"", {"Retry-After": "30"})])
        e = engine(config(
            webhook_connector(sink.url(), policy="ra"),
            policies=policies(policy("ra", """
retry: { schedule: [0s, 100ms, 1s], jitter: none }"""))))
        post(e, {"title": "asks too much"})
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT state, attempts FROM deliveries",
                  [("delivered", 2)], timeout=6)
        g = gaps(attempt_rows(db))[0]
        assert 800 <= g <= 2500, g
        assert e.stop() == 0


def test_retry_after_http_date_on_503(engine, tmp_path):
    """An HTTP-date Retry-After, made when the sink answers: a whole second
    2 to 3 s ahead (the format has no fractions)."""
    with Sink() as sink:
        answered = []

        def handler(req):
            if answered:
                return None  # the default: 200
            answered.append(1)
            when = email.utils.formatdate(math.ceil(time.time()) + 2,
                                          usegmt=True)
            return Answer(503, b"maintenance", {"Retry-After": when})
        sink.handler = handler
        e = engine(config(
            webhook_connector(sink.url(), policy="ra"),
            policies=policies(policy("ra", """
retry: { schedule: [0s, 100ms, 5s], jitter: none }"""))))
        post(e, {"title": "come back later"})
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT state, attempts FROM deliveries",
                  [("delivered", 2)], timeout=8)
        rows = attempt_rows(db)
        assert [(r["status"], r["outcome"]) for r in rows] == [
            (503, "retry"), (200, "delivered")]
        g = gaps(rows)[0]
        assert 1800 <= g <= 4000, g
        assert e.stop() == 0


# ---- failure classes ---------------------------------------------------------

RETRIED = [500, 502, 503, 504, 408, 425, 429]
FAILED = [400, 401, 403, 404, 422]
ONCE = policy("once", "retry: { schedule: [0s, 1h], jitter: none }")


def test_http_statuses_retried_or_failed(engine, tmp_path):
    codes = RETRIED + FAILED
    with Sink() as sink:
        for code in codes:
            sink.respond_on(f"/s{code}", code, f"answer {code}".encode())
        e = engine(config(
            "".join(webhook_connector(sink.url(f"/s{c}"), f"c{c}", policy="once")
                    for c in codes),
            routes=f"  - to: [{', '.join(f'c{c}' for c in codes)}]\n",
            policies=policies(ONCE)))
        post(e, {"title": "many answers"})
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT count(*) FROM attempts", [(len(codes),)])
        wait_rows(db, "SELECT count(*) FROM deliveries WHERE state IN "
                      "('retrying', 'failed')", [(len(codes),)])
        rows = {r["connector"]: r for r in attempt_rows(db)}
        dlv = {c: (s, st) for c, s, st in db_rows(
            db, "SELECT connector, state, last_status FROM deliveries")}
        got = {c: (dlv[f"c{c}"], rows[f"c{c}"]["status"],
                   rows[f"c{c}"]["outcome"], rows[f"c{c}"]["error_class"])
               for c in codes}
        want = {c: (("retrying", c), c, "retry",
                    "http_5xx" if c >= 500 else "http_4xx") for c in RETRIED}
        want.update({c: (("failed", c), c, "failed", "http_4xx") for c in FAILED})
        assert got == want
        time.sleep(0.3)
        assert len(sink.requests) == len(codes)  # nothing tried twice yet
        assert e.stop() == 0


def test_resets_closes_and_timeouts_are_retried(engine, tmp_path):
    with Sink() as sink:
        sink.respond_on("/reset", Reset())
        sink.respond_on("/close", Close())
        sink.respond_on("/hang", Hang())
        e = engine(config(
            webhook_connector(sink.url("/reset"), "rst", policy="once")
            + webhook_connector(sink.url("/close"), "eof", policy="once")
            + webhook_connector(sink.url("/hang"), "stuck", policy="once",
                                timeout="500ms"),
            routes="  - to: [rst, eof, stuck]\n", policies=policies(ONCE)))
        post(e, {"title": "no answer"})
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT count(*) FROM attempts", [(3,)], timeout=8)
        wait_rows(db, "SELECT connector, state FROM deliveries ORDER BY connector",
                  [("eof", "retrying"), ("rst", "retrying"),
                   ("stuck", "retrying")])
        rows = {r["connector"]: r for r in attempt_rows(db)}
        got = {c: (r["status"], r["outcome"], r["error_class"])
               for c, r in rows.items()}
        assert got == {"rst": (None, "retry", "reset"),
                       "eof": (None, "retry", "reset"),
                       "stuck": (None, "retry", "timeout")}
        assert 450 <= rows["stuck"]["duration"] <= 3000, rows["stuck"]
        sink.close()  # wakes the hung connection before the engine stops
        assert e.stop() == 0


def test_410_disables_the_connector_only(engine, tmp_path):
    """410: the connector is held (logged with its name), its delivery
    stays 'retrying'; a later event is not attempted there at all, while
    another connector keeps delivering."""
    name = "retired-api"
    with Sink() as gone, Sink() as other:
        gone.respond(410, b"gone for good")
        e = engine(config(
            webhook_connector(gone.url(), name) + webhook_connector(other.url(), "other"),
            routes=f"  - to: [{name}, other]\n"))
        first = post(e, {"title": "first"})
        lines = wait_log_lines(e, "connector disabled")
        assert any(names_connector(line, name) for line in lines), lines
        db = tmp_path / "hookline.db"
        q = ("SELECT d.connector, d.state, d.attempts FROM deliveries d "
             "WHERE d.event_id = ? ORDER BY d.connector")
        wait_rows(db, q, [("other", "delivered", 1), (name, "retrying", 1)],
                  (first,))
        (status, outcome), = db_rows(
            db, "SELECT a.status, a.outcome FROM attempts a JOIN deliveries d "
                "ON d.id = a.delivery_id WHERE d.connector = ?", (name,))
        assert status == 410 and outcome != "failed"
        second = post(e, {"title": "second"})
        assert other.wait_for(2)[1].json()["data"]["title"] == "second"
        wait_rows(db, q, [("other", "delivered", 1), (name, "queued", 0)],
                  (second,))
        time.sleep(0.5)
        assert len(gone.requests) == 1
        assert db_rows(db, q, (second,)) == [("other", "delivered", 1),
                                             (name, "queued", 0)]
        assert db_rows(db, q, (first,))[1] == (name, "retrying", 1)
        assert db_rows(db, "SELECT count(*) FROM deliveries WHERE state = 'failed'") == [(0,)]
        assert e.stop() == 0


# ---- circuit breaker -------------------------------------------------------

def test_circuit_breaker_opens_probes_and_closes(engine, tmp_path):
    """Three failures in a row open the circuit: nothing is sent and no
    attempt spent for the cooldown, then one probe. The sink fails the
    first probe (the circuit opens again) and answers the second (it
    closes, and everything waiting is delivered)."""
    name = "flaky-api"
    n = 4
    with Sink() as sink:
        # A request after 0.8 s of quiet is a probe; the sink decides
        # by itself, so the test's own timing does not matter.
        lock = threading.Lock()
        seen = {"last": None, "probes": 0}

        def handler(req):
            with lock:
                now = time.monotonic()
                if seen["last"] is not None and now - seen["last"] >= 0.8:
                    seen["probes"] += 1
                seen["last"] = now
                if seen["probes"] >= 2:
                    return Answer(200, b"{}")
                return Answer(500, b"down")
        sink.handler = handler
        e = engine(config(
            webhook_connector(sink.url(), name, policy="breaker"),
            routes=f"  - to: [{name}]\n",
            policies=policies(policy("breaker", """
retry: { schedule: [0s, 50ms], max_attempts: 100, jitter: none }
circuit: { failures: 3, cooldown: 1s }"""))))
        for i in range(n):
            post(e, {"title": f"event {i}"})
        db = tmp_path / "hookline.db"
        opened = wait_log_lines(e, "circuit open")
        t_open = time.monotonic()
        assert any(names_connector(line, name) for line in opened), opened

        def spent():
            return (db_rows(db, "SELECT sum(attempts) FROM deliveries")[0][0],
                    db_rows(db, "SELECT count(*) FROM attempts")[0][0])
        # While open, deliveries spend no attempts (checked twice inside
        # the cooldown, unless this process was too slow to look in time).
        time.sleep(max(0, t_open + 0.1 - time.monotonic()))
        during = spent()
        time.sleep(max(0, t_open + 0.5 - time.monotonic()))
        later = spent()
        if time.monotonic() < t_open + 0.85:
            assert later == during
        opened = wait_log_lines(e, "circuit open", count=2, timeout=4)
        assert all(names_connector(line, name) for line in opened), opened
        closed = wait_log_lines(e, "circuit closed", timeout=5)
        assert any(names_connector(line, name) for line in closed), closed
        wait_rows(db, "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
                  [(n,)], timeout=5)
        assert seen["probes"] == 2

        rows = attempt_rows(db)
        ends = sorted(r["started"] + r["duration"] for r in rows)
        open_at = ends[2]  # the third failure opened the circuit
        assert all(r["status"] == 500 for r in rows
                   if r["started"] + r["duration"] <= open_at)
        after = [r for r in rows if r["started"] > open_at + 20]
        assert len(after) >= n + 1, rows
        p1, p2 = after[0], after[1]
        # Nothing during the cooldown; then exactly one probe at a time.
        assert p1["started"] >= open_at + 900, (open_at, rows)
        assert (p1["status"], p1["outcome"]) == (500, "retry")
        assert p2["started"] >= p1["started"] + p1["duration"] + 900, rows
        assert (p2["status"], p2["outcome"]) == (200, "delivered")
        rest = after[2:]
        assert all(r["started"] >= p2["started"] + p2["duration"] - 2
                   for r in rest), rows
        assert all(r["outcome"] == "delivered" for r in rest), rows
        assert len(after) == n + 1  # the failed probe, then one each
        # Every attempt counted on a delivery is a row, and the other way.
        per = dict(db_rows(db, "SELECT id, attempts FROM deliveries"))
        counted = {}
        for r in rows:
            counted[r["delivery"]] = counted.get(r["delivery"], 0) + 1
        assert per == counted
        assert len(sink.requests) == len(rows)
        assert e.stop() == 0


# ---- rate shaping, fairness, isolation --------------------------------------

def admin(e, connector, verb):
    """POST /v1/connectors/NAME/pause or /resume; returns the new state."""
    status, _, raw = e.request(
        "POST", f"/v1/connectors/{connector}/{verb}",
        headers={"Authorization": f"Bearer {ADMIN_TOKEN}"})
    assert status == 200, raw
    got = json.loads(raw)
    assert got["connector"] == connector, got
    return got["state"]


def hold_while_posting(e, db, connector, n, post_all):
    """Pause `connector` through the admin API, run post_all(), wait until
    its n deliveries are queued (none sent), then resume it: what follows
    depends on the dispatcher alone, not on how fast a loaded machine takes
    the events in (the normalizer runs at SCHED_IDLE)."""
    assert admin(e, connector, "pause") == "paused"
    post_all()
    wait_rows(db, "SELECT state, count(*) FROM deliveries WHERE connector = ? "
                  "GROUP BY state", [("queued", n)], (connector,))
    assert admin(e, connector, "resume") == "active"


def test_rate_shaping_burst_then_steady_rate(engine, tmp_path):
    """rate { per_second: 20, burst: 5 } with 45 deliveries waiting: five at
    once, then 20 a second (requests 6..45 span about 2 s)."""
    n = 45
    with Sink() as sink:
        e = engine(config(
            webhook_connector(sink.url(), policy="shaped"),
            policies=policies(policy("shaped", """
rate: { per_second: 20, burst: 5 }
max_in_flight: 8""")), extra=ADMIN))
        db = tmp_path / "hookline.db"
        hold_while_posting(e, db, "out", n, lambda: post_many(
            e, [{"title": f"event {i}"} for i in range(n)]))
        reqs = sink.wait_for(n, timeout=10)
        times = sorted(r.time for r in reqs)
        t0 = times[0]
        shown = [round(t - t0, 3) for t in times]
        assert times[4] - t0 < 0.5, shown
        span = times[n - 1] - times[5]
        assert 1.8 <= span <= 2.6, shown
        wait_rows(db, "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
                  [(n,)])
        # Never ahead of the bucket: by the engine's own start times, at
        # most 5 + 20/s since the first attempt (10% and 50 ms of slack).
        started = sorted(r["started"] for r in attempt_rows(db))
        shown = [t - started[0] for t in started]
        for i in range(5, n):
            assert shown[i] >= (i - 4) * 50 * 0.9 - 50, (i, shown)
        assert e.stop() == 0


def test_tenants_share_a_connector_fairly(engine, tmp_path):
    """Tenant a floods a shared, rate-limited connector with 60 events, then
    tenant b posts 5: b's are not stuck behind the flood (all 5 arrive
    before a's 30th)."""
    with Sink() as sink:
        e = engine(config(
            webhook_connector(sink.url(), "shared", policy="shaped"),
            routes="  - to: [shared]\n",
            tenants="tenants:\n  a: { token: ta }\n  b: { token: tb }\n",
            sources=f"""\
  src-a:
    kind: generic
    tenant: a
    verify: {{ bearer: {{ tokens: [{TOKEN}] }} }}
  src-b:
    kind: generic
    tenant: b
    verify: {{ bearer: {{ tokens: [{TOKEN}] }} }}
""",
            policies=policies(policy("shaped", """
rate: { per_second: 20, burst: 1 }""")), extra=ADMIN))

        def flood():
            post_many(e, [{"title": f"a-{i}"} for i in range(60)], source="src-a")
            post_many(e, [{"title": f"b-{i}"} for i in range(5)], source="src-b")
        hold_while_posting(e, tmp_path / "hookline.db", "shared", 65, flood)

        def tenant(r):
            return r.json()["data"]["title"].split("-")[0]
        deadline = time.monotonic() + 8
        while True:
            reqs = sink.requests
            if sum(tenant(r) == "b" for r in reqs) >= 5:
                break
            assert time.monotonic() < deadline, \
                f"b got {sum(tenant(r) == 'b' for r in reqs)} of 5 " \
                f"after {len(reqs)} requests"
            time.sleep(0.05)
        order = [tenant(r) for r in sorted(reqs, key=lambda r: r.index)]
        last_b = max(i for i, t in enumerate(order) if t == "b")
        a_before = order[:last_b].count("a")
        assert a_before < 29, f"tenant b's last request came after {a_before} of a's: {order}"
        assert e.stop() == 0


def test_a_stuck_connector_does_not_hold_up_another(engine, tmp_path):
    """'slow' hangs until its 3 s timeout with 2 requests in flight; 'fast'
    delivers all 20 events meanwhile, each within 1.5 s of its delivery
    being created."""
    n = 20
    with Sink() as slow, Sink() as fast:
        slow.respond(Hang())
        e = engine(config(
            webhook_connector(slow.url(), "slow", policy="narrow", timeout="3s")
            + webhook_connector(fast.url(), "fast"),
            routes="  - to: [slow, fast]\n",
            policies=policies(policy("narrow", "max_in_flight: 2"))))
        for i in range(n):
            post(e, {"title": f"event {i}"})
        fast.wait_for(n, timeout=10)
        stuck = slow.wait_for(1)
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT count(*) FROM deliveries WHERE connector = 'fast' "
                      "AND state = 'delivered'", [(n,)])
        # From the delivery's creation (at normalization) to the end of the
        # attempt that delivered it. events.received_at would also count
        # the normalizer's wait, and it runs at SCHED_IDLE: on a machine
        # whose CPUs are saturated that alone can take seconds.
        latency = [r[0] for r in db_rows(
            db, "SELECT a.started_at + a.duration_ms - d.created_at FROM attempts a "
                "JOIN deliveries d ON d.id = a.delivery_id "
                "WHERE d.connector = 'fast' AND a.outcome = 'delivered'")]
        assert len(latency) == n and max(latency) < 1500, latency
        # The slow one is stuck with max_in_flight requests out (until the
        # first of them times out).
        first = stuck[0].time
        assert len([r for r in slow.requests if r.time < first + 2.9]) <= 2
        assert db_rows(db, "SELECT count(*) FROM deliveries WHERE connector = 'slow' "
                           "AND state = 'delivered'") == [(0,)]
        slow.close()  # ends the hung requests, so the engine stops at once
        assert e.stop() == 0


# ---- max_age -----------------------------------------------------------------

def test_max_age_expires_a_delivery(engine, tmp_path):
    with Sink() as sink:
        sink.respond(500, b"still down")
        e = engine(config(
            webhook_connector(sink.url(), policy="aging"),
            policies=policies(policy("aging", """
retry: { schedule: [0s, 400ms], max_attempts: 100, max_age: 1s, jitter: none }"""))))
        post(e, {"title": "too late"})
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT state FROM deliveries", [("expired",)], timeout=6)
        (created, updated, attempts), = db_rows(
            db, "SELECT created_at, updated_at, attempts FROM deliveries")
        rows = attempt_rows(db)
        assert attempts == len(rows) >= 2, rows
        assert [r["outcome"] for r in rows] == ["retry"] * (len(rows) - 1) + ["expired"]
        assert all(r["started"] - created <= 1100 for r in rows), (created, rows)
        assert 600 <= updated - created <= 2000, (created, updated, rows)
        count = len(sink.requests)
        assert count == len(rows)
        time.sleep(0.8)
        assert len(sink.requests) == count
        assert e.stop() == 0
