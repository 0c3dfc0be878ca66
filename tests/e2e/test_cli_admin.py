"""The operator's commands against a running engine, as a user runs them:
events, deliveries, retry, replay, pause, resume, status over the admin
API, and tail over the websocket stream (against the engine, and against a
scripted websocket server for what the engine rarely does: ping, lagged,
a bad handshake)."""
import base64
import hashlib
import json
import os
import queue
import re
import signal
import socket
import struct
import subprocess
import threading
import time
import urllib.parse

import pytest

from conftest import (BIN, Engine, assert_clean, minimal_config, run_cli,
                      until)
from sink import Sink

ADMIN = "admin-token-0123456789abcdef"
ACME = "acme-tenant-token"
BETA = "beta-tenant-token"
SRC = "source-token"

CONFIG = """\
server:
  listen: 127.0.0.1:0
storage:
  path: ./hookline.db
outbound: {{ allow_networks: [127.0.0.0/8] }}
admin:
  token: {admin}
tenants:
  acme: {{ token: {acme} }}
  beta: {{ token: {beta} }}
sources:
  demo:
    tenant: acme
    kind: generic
    verify: {{ bearer: {{ tokens: [{src}] }} }}
  flaky-src:
    tenant: acme
    kind: generic
    verify: {{ bearer: {{ tokens: [{src}] }} }}
  beta-src:
    tenant: beta
    kind: generic
    verify: {{ bearer: {{ tokens: [{src}] }} }}
connectors:
  sink:
    plugin: webhook
    url: {sink}
    timeout: 2s
  flaky:
    plugin: webhook
    url: {flaky}
    timeout: 2s
    policy: once
  beta-out:
    plugin: webhook
    tenant: beta
    url: {beta_url}
    timeout: 2s
policies:
  once:
    retry: {{ max_attempts: 1 }}
routes:
  - match: {{ source: demo }}
    to: [sink]
  - match: {{ source: flaky-src }}
    to: [flaky]
  - match: {{ source: beta-src }}
    to: [beta-out]
"""

ULID = r"[0-9A-HJKMNP-TV-Z]{26}"


class World:
    """One engine and its sink, shared by the tests of this file; each test
    tells its own webhooks apart by a unique title."""

    def __init__(self, engine, sink):
        self.engine = engine
        self.sink = sink
        self.url = f"http://127.0.0.1:{engine.port}"

    def post(self, title, source="demo"):
        status, _, raw = self.engine.request(
            "POST", f"/v1/hooks/{source}",
            body=json.dumps({"title": title, "severity": "warning"}).encode(),
            headers={"Authorization": f"Bearer {SRC}",
                     "Content-Type": "application/json"})
        assert status == 202, raw
        return json.loads(raw)["id"]

    def cli(self, *args, token=ADMIN, env=None):
        """Run a command against the engine; the token from --token unless
        token is None."""
        full = {"HOOKLINE_URL": self.url, "HOOKLINE_TOKEN": ""}
        full.update(env or {})
        extra = ["--token", token] if token is not None else []
        return run_cli(*args, *extra, env=full)

    def json(self, *args, token=ADMIN):
        p = self.cli(*args, "--json", token=token)
        assert p.returncode == 0, p.stderr
        return json.loads(p.stdout)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    folder = tmp_path_factory.mktemp("cli_admin")
    with Sink() as sink:
        sink.respond_on("/flaky", 500, b"nope")
        path = folder / "hookline.yaml"
        path.write_text(CONFIG.format(admin=ADMIN, acme=ACME, beta=BETA,
                                      src=SRC, sink=sink.url("/hook"),
                                      flaky=sink.url("/flaky"),
                                      beta_url=sink.url("/beta")))
        e = Engine(path, cwd=folder).start()
        try:
            yield World(e, sink)
        finally:
            rc = e.stop()
        assert rc == 0


def delivered(world, event_id):
    """Wait until every delivery of the event is delivered; its deliveries."""
    def done():
        d = world.json("deliveries", "--event", event_id)["deliveries"]
        return d if d and all(x["state"] == "delivered" for x in d) else None
    return until(done, f"the deliveries of {event_id} to be delivered")


def delivery_of(world, event_id, state):
    def find():
        d = world.json("deliveries", "--event", event_id, "--state", state)
        return d["deliveries"][0] if d["deliveries"] else None
    return until(find, f"a {state} delivery of {event_id}")


def rows(stdout):
    """A table's lines as lists of cells (two spaces or more apart)."""
    return [re.split(r"\s{2,}", line.strip()) for line in stdout.splitlines()
            if line.strip()]


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


# ---- help and usage ---------------------------------------------------------

ADMIN_COMMANDS = ["events", "deliveries", "retry", "replay", "pause",
                  "resume", "status", "tail"]


def test_help_lists_and_describes_every_admin_command():
    p = run_cli("help")
    assert p.returncode == 0
    for cmd in ADMIN_COMMANDS + ["connectors"]:
        assert f"\n  {cmd} " in p.stdout
    assert "HOOKLINE_URL" in p.stdout and "HOOKLINE_TOKEN" in p.stdout
    for cmd in ADMIN_COMMANDS:
        a = run_cli("help", cmd)
        b = run_cli(cmd, "--help")
        assert a.returncode == 0 and b.returncode == 0, (a.stderr, b.stderr)
        assert a.stdout == b.stdout
        assert a.stdout.startswith(f"Usage: hookline {cmd} ")
        for opt in ("--url URL", "--token TOKEN", "--token-file PATH", "--json"):
            assert opt in a.stdout


@pytest.mark.parametrize("args, message", [
    (["events", "--bogus"], "unknown option '--bogus'"),
    (["events", "--tenant"], "--tenant needs a value"),
    (["events", "01ABC", "--state", "failed"], "an ID takes no filters"),
    (["retry"], "give the ID of the delivery to retry"),
    (["pause"], "give the name of the connector to pause"),
    (["status", "extra"], "unexpected argument 'extra'"),
    (["status", "--tenant", "acme"], "unknown option '--tenant'"),
    (["events", "--url", "ftp://host"], "--url 'ftp://host': use http://"),
    (["events", "--url", "http://host:99999"], "the port must be a number"),
    (["events", "--token", "a", "--token-file", "f"], "not both"),
    (["tail", "--limit", "5"], "unknown option '--limit'"),
])
def test_bad_usage_shows_the_usage_and_exits_2(args, message):
    p = run_cli(*args)
    assert p.returncode == 2, p.stderr
    assert p.stderr.startswith(f"hookline {args[0]}: ")
    assert message in p.stderr
    assert f"Usage: hookline {args[0]} " in p.stderr
    assert p.stdout == ""


def test_unreachable_engine_says_how_to_point_at_it():
    url = f"http://127.0.0.1:{free_port()}"
    for cmd in (["events"], ["status"], ["retry", "01ABC"], ["tail"]):
        p = run_cli(*cmd, "--url", url)
        assert p.returncode == 1
        assert p.stderr == (f"hookline {cmd[0]}: cannot reach {url}: Connection "
                            "refused; is hookline running? set --url or "
                            "HOOKLINE_URL\n")
    p = run_cli("deliveries", env={"HOOKLINE_URL": url + "/"})
    assert p.returncode == 1
    assert f"cannot reach {url}: Connection refused" in p.stderr


# ---- tokens -------------------------------------------------------------------

def test_tokens_from_the_environment_a_file_and_wrong_ones(world, tmp_path):
    world.post("token check")
    p = world.cli("status", token=None, env={"HOOKLINE_TOKEN": ADMIN})
    assert p.returncode == 0, p.stderr
    assert rows(p.stdout)[0] == ["CONNECTOR", "PLUGIN", "TENANT", "STATE",
                                 "CIRCUIT", "QUEUED", "RETRYING", "SENDING"]
    token_file = tmp_path / "token"
    token_file.write_text(ADMIN + "\n")
    p = world.cli("status", "--token-file", str(token_file), token=None)
    assert p.returncode == 0, p.stderr
    assert "sink" in p.stdout
    # --token beats the environment.
    p = world.cli("events", token="wrong", env={"HOOKLINE_TOKEN": ADMIN})
    assert p.returncode == 1
    assert p.stdout == ""
    assert p.stderr == ("hookline events: 401 unauthorized: the token is "
                        "neither admin.token nor a tenant's token\n")
    p = world.cli("events", token=None)
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        "hookline events: 401 unauthorized: send Authorization: Bearer <token>",
        "hookline events: no token was given: use --token, --token-file or "
        "HOOKLINE_TOKEN"]
    p = world.cli("events", "--token-file", str(tmp_path / "missing"),
                  token=None)
    assert p.returncode == 1
    assert p.stderr == (f"hookline events: cannot read the token file "
                        f"{tmp_path / 'missing'}: No such file or directory\n")


def test_a_tenant_token_sees_only_its_tenant(world):
    beta_id = world.post("beta only", source="beta-src")
    acme_id = world.post("acme only")
    delivered(world, beta_id)
    delivered(world, acme_id)
    seen = [e["id"] for e in world.json("events", token=BETA)["events"]]
    assert beta_id in seen and acme_id not in seen
    names = [c["name"] for c in world.json("status", token=BETA)["connectors"]]
    assert names == ["beta-out"]
    p = world.cli("events", acme_id, token=BETA)
    assert p.returncode == 1
    assert p.stderr == f"hookline events: 404 not_found: no event '{acme_id}'\n"


# ---- events and deliveries ------------------------------------------------

def test_events_table_json_pages_and_one_event(world):
    first = world.post("disk full on db-1")
    second = world.post("disk full on db-2")
    delivered(world, first)
    delivered(world, second)

    p = world.cli("events", "--source", "demo")
    assert p.returncode == 0, p.stderr
    table = rows(p.stdout)
    assert table[0] == ["RECEIVED", "ID", "TENANT", "SOURCE", "STATE",
                        "TYPE", "DELIVERIES"]
    by_id = {r[1]: r for r in table[1:]}
    for eid in (first, second):
        received, _, tenant, source, state, type_, dl = by_id[eid]
        assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", received)
        assert (tenant, source, state, type_, dl) == (
            "acme", "demo", "normalized", "message", "delivered 1")
    # Newest first.
    ids = [r[1] for r in table[1:]]
    assert ids.index(second) < ids.index(first)

    listed = world.json("events", "--source", "demo")
    assert [e["id"] for e in listed["events"]][:2] == [second, first]

    page = world.json("events", "--source", "demo", "--limit", "1")
    assert [e["id"] for e in page["events"]] == [second]
    assert page["next_cursor"]
    p = world.cli("events", "--source", "demo", "--limit", "1")
    assert f"add --cursor {page['next_cursor']} for the next page" in p.stdout
    nxt = world.json("events", "--source", "demo", "--limit", "1",
                     "--cursor", page["next_cursor"])
    assert [e["id"] for e in nxt["events"]] == [first]

    p = world.cli("events", first)
    assert p.returncode == 0, p.stderr
    assert f"event        {first}\n" in p.stdout
    assert "tenant       acme\n" in p.stdout
    assert f"canonical event {first} (message, warning)" in p.stdout
    assert '"title": "disk full on db-1"' in p.stdout
    assert '"specversion": "1.0"' in p.stdout
    one = world.json("events", first)
    assert one["canonical"][0]["data"]["title"] == "disk full on db-1"

    p = world.cli("events", "--since", "bogus")
    assert p.returncode == 1
    assert p.stderr.startswith("hookline events: 400 invalid_parameter: since "
                               "'bogus' is not a time")
    assert world.json("events", "--since", "10m", "--source", "demo")["events"]
    assert not world.json("events", "--until", "2000-01-01T00:00:00Z",
                          "--source", "demo")["events"]


def test_deliveries_by_state_then_retry_and_replay(world):
    a = world.post("flaky a", source="flaky-src")
    b = world.post("flaky b", source="flaky-src")
    da = delivery_of(world, a, "failed")
    delivery_of(world, b, "failed")  # both have failed before the CLI looks

    p = world.cli("deliveries", "--state", "failed", "--connector", "flaky")
    assert p.returncode == 0, p.stderr
    table = rows(p.stdout)
    assert table[0] == ["ID", "CONNECTOR", "STATE", "ATTEMPTS", "LAST",
                        "UPDATED", "NEXT ATTEMPT", "EVENT"]
    mine = {r[0]: r for r in table[1:]}
    assert mine[da["id"]][1:5] == ["flaky", "failed", "1", "HTTP 500"]
    assert mine[da["id"]][7] == a
    assert all(r[2] == "failed" for r in table[1:])

    p = world.cli("deliveries", da["id"])
    assert p.returncode == 0, p.stderr
    assert f"delivery     {da['id']}\n" in p.stdout
    assert "state        failed\n" in p.stdout
    attempts = rows(p.stdout.split("\nattempts\n")[1])
    assert attempts[0][:5] == ["#", "STARTED", "DURATION", "STATUS", "OUTCOME"]
    assert attempts[1][0] == "1" and attempts[1][3] == "500"
    assert attempts[1][-1] == "nope"

    # Retry one: the receiver is well again for one request.
    before = len(world.sink.wait_for(2, path="/flaky"))
    world.sink.script_on("/flaky", [200])
    p = world.cli("retry", da["id"])
    assert p.returncode == 0, p.stderr
    assert p.stdout == f"delivery {da['id']} is queued again (it was failed)\n"
    got = world.sink.wait_for(before + 1, path="/flaky")
    assert got[-1].json()["data"]["title"] == "flaky a"
    delivered(world, a)
    assert world.json("deliveries", "--event", b)["deliveries"][0]["state"] == "failed"

    # Replay what is still failed on that connector.
    world.sink.script_on("/flaky", [200])
    p = world.cli("replay", "--connector", "flaky", "--since", "1h")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "replayed 1 delivery\n"
    got = world.sink.wait_for(before + 2, path="/flaky")
    assert got[-1].json()["data"]["title"] == "flaky b"
    detail = delivered(world, b)[0]
    assert detail["attempts"] == 2
    p = world.cli("replay", "--connector", "flaky")
    assert p.stdout == ("replayed 0 deliveries\n(without --state only failed "
                        "and expired deliveries are replayed)\n")
    assert world.json("replay", "--connector", "flaky") == {"replayed": 0}

    p = world.cli("retry", "01NOSUCHDELIVERY0000000000")
    assert p.returncode == 1
    assert p.stderr == ("hookline retry: 404 not_found: no delivery "
                        "'01NOSUCHDELIVERY0000000000'\n")
    p = world.cli("replay", "--state", "sending")
    assert p.returncode == 1
    assert "400 invalid_parameter: replay takes deliveries in states" in p.stderr


def test_pause_status_resume(world):
    p = world.cli("status")
    assert p.returncode == 0, p.stderr
    table = {r[0]: r for r in rows(p.stdout)[1:]}
    assert table["sink"][1:5] == ["webhook", "-", "active", "closed"]
    assert table["beta-out"][2] == "beta"

    p = world.cli("pause", "sink")
    try:
        assert p.returncode == 0, p.stderr
        assert p.stdout == "connector sink: paused\n"
        row = {r[0]: r for r in rows(world.cli("status").stdout)[1:]}["sink"]
        assert row[3] == "paused"
        eid = world.post("held while paused")

        def queued():
            c = {x["name"]: x for x in world.json("status")["connectors"]}
            return c["sink"]["queue"]["queued"] >= 1
        until(queued, "the delivery to wait in the queue")
        assert world.json("deliveries", "--event", eid)["deliveries"][0]["state"] == "queued"
    finally:
        p = world.cli("resume", "sink")
    assert p.returncode == 0, p.stderr
    assert p.stdout == "connector sink: active\n"
    delivered(world, eid)
    row = {r[0]: r for r in rows(world.cli("status").stdout)[1:]}["sink"]
    assert row[3] == "active"

    p = world.cli("pause", "nope")
    assert p.returncode == 1
    assert p.stderr == "hookline pause: 404 not_found: no connector named 'nope'\n"
    assert world.json("pause", "beta-out") == {"connector": "beta-out",
                                               "state": "paused"}
    assert world.json("resume", "beta-out", token=BETA) == {
        "connector": "beta-out", "state": "active"}


# ---- tail against the engine ----------------------------------------------

class Tail:
    """`hookline tail` running, its output read line by line."""

    def __init__(self, *args, env=None):
        full = dict(os.environ)
        full.update({"HOOKLINE_TOKEN": "", "HOOKLINE_URL": ""})
        full.update(env or {})
        self.proc = subprocess.Popen([BIN, "tail", *args], env=full,
                                     stdin=subprocess.DEVNULL,
                                     stdout=subprocess.PIPE,
                                     stderr=subprocess.PIPE, text=True)
        self.out, self.err = queue.Queue(), queue.Queue()
        self.stderr = []
        self.threads = [threading.Thread(target=self._read, args=(f, q), daemon=True)
                        for f, q in ((self.proc.stdout, self.out),
                                     (self.proc.stderr, self.err))]
        for t in self.threads:
            t.start()

    def _read(self, f, q):
        for line in f:
            q.put(line.rstrip("\n"))
        q.put(None)

    def line(self, timeout=20):
        try:
            got = self.out.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"tail printed nothing in {timeout}s; stderr: "
                                 f"{self.drain_err()}") from None
        assert got is not None, f"tail ended: {self.drain_err()}"
        return got

    def until(self, pred, timeout=20):
        """Lines until one satisfies pred (included)."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            seen.append(self.line(max(0.1, deadline - time.monotonic())))
            if pred(seen[-1]):
                return seen

    def wait_err(self, text, timeout=20):
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.stderr):
            try:
                line = self.err.get(timeout=max(0.1, deadline - time.monotonic()))
            except queue.Empty:
                line = None
            if line is not None:
                self.stderr.append(line)
            elif time.monotonic() > deadline or self.proc.poll() is not None:
                raise AssertionError(f"tail never said {text!r}: {self.stderr}")
        return self.stderr

    def drain_err(self):
        while True:
            try:
                line = self.err.get_nowait()
            except queue.Empty:
                return self.stderr
            if line is not None:
                self.stderr.append(line)

    def stop(self, sig=signal.SIGINT, timeout=15):
        if sig is not None and self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait(timeout)

    def wait(self, timeout=15):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"tail did not exit: {self.drain_err()}")
        for t in self.threads:
            t.join(5)
        self.drain_err()
        assert_clean("\n".join(self.stderr))
        return rc


def test_tail_follows_a_webhook_to_its_delivery_and_stops_on_ctrl_c(world):
    t = Tail("--json", "--url", world.url, "--token", ADMIN)
    try:
        t.wait_err("following")
        eid = world.post("followed live")
        lines = t.until(lambda l: json.loads(l)["type"] == "delivery.state"
                        and json.loads(l).get("event_id") == eid
                        and json.loads(l)["state"] == "delivered")
    finally:
        rc = t.stop()
    msgs = [json.loads(l) for l in lines]
    mine = [m for m in msgs if m.get("event_id") == eid]
    assert [m["type"] for m in mine] == ["event.received", "event.normalized",
                                         "delivery.state"]
    assert mine[-1]["connector"] == "sink" and mine[-1]["status"] == 200
    seqs = [m["seq"] for m in msgs]
    assert seqs == sorted(seqs) and len(set(seqs)) == len(seqs)
    assert rc == 0, t.stderr
    assert t.stderr[0] == f"hookline tail: following {world.url}/v1/stream, live (Ctrl-C to stop)"


def test_tail_since_0_replays_from_the_start_in_readable_lines(world):
    eid = world.post("replayed from the start")
    delivery_id = delivered(world, eid)[0]["id"]
    t = Tail("--since", "0", "--json", "--url", world.url, "--token", ADMIN)
    try:
        first = json.loads(t.line())
    finally:
        assert t.stop() == 0
    assert first["seq"] == 1 and first["type"] == "event.received"

    t = Tail("--since", "0", "--types", "delivery.state", "--source", "demo",
             env={"HOOKLINE_URL": world.url, "HOOKLINE_TOKEN": ADMIN})
    try:
        lines = t.until(lambda l: l.endswith(delivery_id))
    finally:
        assert t.stop() == 0
    assert re.fullmatch(
        r"seq \d+  \d\d:\d\d:\d\d\.\d{3}  delivery\.state  acme/demo → sink  "
        rf"delivered  attempt 1  HTTP 200  {ULID}", lines[-1]), lines[-1]
    assert all("  delivery.state  acme/demo → " in l for l in lines)
    assert "from seq 0" in t.stderr[0]


def test_tail_refusals_are_reported(world):
    t = Tail("--url", world.url, "--token", "wrong")
    assert t.wait() == 1
    assert t.stderr == ["hookline tail: 401 unauthorized: the token is neither "
                        "admin.token nor a tenant's token"]
    t = Tail("--url", world.url, "--token", ADMIN, "--types", "nonsense")
    assert t.wait() == 1
    assert t.stderr[0].startswith("hookline tail: 400 invalid_parameter: types: "
                                  "'nonsense' is not one of")
    # Something that is not a websocket endpoint.
    t = Tail("--url", world.sink.url(""), "--token", ADMIN)
    assert t.wait() == 1
    assert "answered HTTP 200 instead of opening the websocket" in t.stderr[0]


def test_tail_exits_0_when_the_engine_goes_away(engine):
    e = engine(minimal_config(f"admin:\n  token: {ADMIN}\n"))
    t = Tail("--url", f"http://127.0.0.1:{e.port}", "--token", ADMIN)
    t.wait_err("following")
    assert e.stop() == 0
    assert t.wait() == 0
    assert "hookline tail: hookline is going away (close 1001: hookline is " \
           "shutting down)" in t.stderr[-1]


# ---- tail against a scripted websocket server -----------------------------

GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def ws_send(sock, opcode, payload=b""):
    n = len(payload)
    head = bytes([0x80 | opcode])
    if n < 126:
        head += bytes([n])
    elif n < 65536:
        head += bytes([126]) + struct.pack("!H", n)
    else:
        head += bytes([127]) + struct.pack("!Q", n)
    sock.sendall(head + payload)


def recv_exact(sock, n):
    data = b""
    while len(data) < n:
        chunk = sock.recv(n - len(data))
        assert chunk, "the client closed the connection"
        data += chunk
    return data


def ws_recv(sock):
    """One frame from the client: (opcode, masked, payload)."""
    b0, b1 = recv_exact(sock, 2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", recv_exact(sock, 2))[0]
    elif n == 127:
        n = struct.unpack("!Q", recv_exact(sock, 8))[0]
    mask = recv_exact(sock, 4) if b1 & 0x80 else b"\0\0\0\0"
    data = bytes(c ^ mask[i % 4] for i, c in enumerate(recv_exact(sock, n)))
    return b0 & 0x0F, bool(b1 & 0x80), data


class FakeStream:
    """A websocket server that plays script(index, sock, request) for each
    of its first `connections` connections: request is the head as text."""

    def __init__(self, script, connections):
        self.script = script
        self.connections = connections
        self.requests, self.errors = [], []
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.url = f"http://127.0.0.1:{self.sock.getsockname()[1]}"
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        for index in range(self.connections):
            try:
                conn, _ = self.sock.accept()
            except OSError:
                return
            with conn:
                conn.settimeout(15)
                try:
                    head = b""
                    while b"\r\n\r\n" not in head:
                        chunk = conn.recv(4096)
                        assert chunk, "closed before the request ended"
                        head += chunk
                    self.requests.append(head.decode())
                    self.script(index, conn, head.decode())
                except Exception as exc:  # reported by the test
                    self.errors.append(repr(exc))

    def close(self):
        try:
            self.sock.shutdown(socket.SHUT_RDWR)  # wakes a pending accept
        except OSError:
            pass
        self.thread.join(5)
        self.sock.close()


def upgrade(sock, request, accept=None):
    key = re.search(r"(?im)^Sec-WebSocket-Key: (\S+)\r$", request).group(1)
    want = base64.b64encode(hashlib.sha1((key + GUID).encode()).digest()).decode()
    sock.sendall(("HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                  "Connection: Upgrade\r\nSec-WebSocket-Accept: "
                  f"{accept or want}\r\n\r\n").encode())


def target_query(request):
    target = request.split(" ")[1]
    path, _, query = target.partition("?")
    return path, urllib.parse.parse_qs(query)


def test_tail_answers_pings_reconnects_when_lagged_and_leaves_on_1001():
    pongs = []

    def script(index, sock, request):
        path, query = target_query(request)
        assert path == "/base/v1/stream"
        assert re.search(rf"(?im)^Authorization: Bearer {ADMIN}\r$", request)
        assert re.search(r"(?im)^Sec-WebSocket-Version: 13\r$", request)
        if index == 0:
            assert query == {"connector": ["sink"]}
            upgrade(sock, request)
            ws_send(sock, 9, b"are you there")
            pongs.append(ws_recv(sock))
            ws_send(sock, 1, json.dumps({"seq": 5, "type": "event.received",
                                         "time": "2026-11-28T07:39:49.602Z",
                                         "tenant": "acme", "source": "demo",
                                         "event_id": "E5"}).encode())
            ws_send(sock, 1, b'{"type":"lagged","last_seq":7,'
                             b'"hint":"reconnect with since=7"}')
            ws_send(sock, 8, struct.pack("!H", 1008) + b"lagged")
        else:
            assert query == {"connector": ["sink"], "since": ["7"]}
            upgrade(sock, request)
            ws_send(sock, 1, b'{"seq":8,"type":"connector.state",'
                             b'"time":"2026-11-28T07:39:50.000Z",'
                             b'"connector":"sink","state":"paused",'
                             b'"reason":"by the admin API"}')
            ws_send(sock, 8, struct.pack("!H", 1001) + b"restarting")
            pongs.append(ws_recv(sock))  # the close answered

    server = FakeStream(script, 2)
    try:
        t = Tail("--connector", "sink", "--url", server.url + "/base/",
                 "--token", ADMIN)
        assert t.wait() == 0, t.stderr
    finally:
        server.close()
    assert server.errors == []
    assert len(server.requests) == 2
    assert pongs == [(10, True, b"are you there"),
                     (8, True, struct.pack("!H", 1001))]
    assert [t.out.get_nowait() for _ in range(2)] == [
        "seq 5  07:39:49.602  event.received  acme/demo  E5",
        "seq 8  07:39:50.000  connector.state  sink  paused  by the admin API"]
    assert ("hookline tail: fell behind the stream and was dropped after seq 7; "
            "reconnecting from there") in t.stderr
    assert t.stderr[-1] == ("hookline tail: hookline is going away (close 1001: "
                            "restarting); resume with --since 8")


def test_tail_closes_with_1000_on_ctrl_c():
    got = []
    ready = threading.Event()

    def script(index, sock, request):
        upgrade(sock, request)
        ws_send(sock, 1, b'{"seq":1,"type":"event.received",'
                         b'"time":"2026-11-28T07:39:49.602Z"}')
        ready.set()
        got.append(ws_recv(sock))
        ws_send(sock, 8, struct.pack("!H", 1000))

    server = FakeStream(script, 1)
    try:
        t = Tail("--json", "--url", server.url, "--token", ADMIN)
        assert json.loads(t.line())["seq"] == 1
        assert ready.wait(10)
        assert t.stop() == 0, t.stderr
    finally:
        server.close()
    assert server.errors == []
    assert got == [(8, True, struct.pack("!H", 1000))]


def test_tail_refuses_a_wrong_accept_and_reports_a_lost_connection():
    def script(index, sock, request):
        if index == 0:
            upgrade(sock, request, accept="d3JvbmcgYWNjZXB0IGtleSE=")
        else:
            upgrade(sock, request)
            ws_send(sock, 1, b'{"seq":41,"type":"event.received"}')
            sock.shutdown(socket.SHUT_RDWR)

    server = FakeStream(script, 2)
    try:
        t = Tail("--url", server.url, "--token", ADMIN)
        assert t.wait() == 1
        assert t.stderr == [f"hookline tail: {server.url}: Sec-WebSocket-Accept "
                            "does not match the key sent"]
        t = Tail("--url", server.url, "--token", ADMIN)
        assert t.wait() == 1
    finally:
        server.close()
    assert server.errors == []
    assert t.stderr[-1] == ("hookline tail: the engine closed the connection "
                            "after seq 41; resume with: hookline tail --since 41")
