"""The live websocket feed, GET /v1/stream, against the real binary: the
handshake and its refusals, who sees what, the filters, every kind of
message, the protocol itself (pings, fragments, limits, bad frames), a slow
consumer told it lagged and resuming with since=, shutdown, and a real
browser reading it.

Two clients: python3-websockets (10.4, the legacy asyncio API) for the
ordinary reading, and RawWS below -- a socket with the handshake done by
hand and frames built with struct -- to send what no library would."""
import asyncio
import base64
import hashlib
import http.server
import json
import os
import re
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import websockets
from websockets.exceptions import ConnectionClosed

from conftest import Engine, db_rows, wait_rows
from sink import Answer, Sink

HERE = Path(__file__).resolve().parent
ADMIN = "stream-admin-token-0123456789"
ACME = "stream-acme-token-0123456789"
BETA = "stream-beta-token-0123456789"
HOOK = "stream-hook-token"
WS_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")
NOTE_TYPES = {"event.received", "event.normalized", "event.unparsed",
              "delivery.state", "connector.state"}

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0, 1, 2, 8, 9, 10


# ---- configuration ----------------------------------------------------------

def base_config(body, stream="heartbeat: 30s", admin=True):
    return ("""\
server:
  listen: 127.0.0.1:0
storage:
  path: ./hookline.db
outbound: { allow_networks: [127.0.0.0/8] }
""" + (f"admin: {{ token: {ADMIN} }}\n" if admin else "")
            + body + f"stream: {{ {stream} }}\n")


def tenants_config(sink, stream="heartbeat: 30s"):
    """Two tenants, each with its sources, its connector and its route."""
    return base_config(f"""\
tenants:
  acme: {{ token: {ACME} }}
  beta: {{ token: {BETA} }}
sources:
  acme-src:
    tenant: acme
    kind: generic
    verify: {{ bearer: {{ tokens: [{HOOK}] }} }}
  acme-am:
    tenant: acme
    kind: alertmanager
    verify: {{ bearer: {{ tokens: [{HOOK}] }} }}
  beta-src:
    tenant: beta
    kind: generic
    verify: {{ bearer: {{ tokens: [{HOOK}] }} }}
connectors:
  acme-out:
    plugin: webhook
    tenant: acme
    url: {sink.url("/acme")}
  beta-out:
    plugin: webhook
    tenant: beta
    url: {sink.url("/beta")}
routes:
  - match: {{ tenant: [acme] }}
    to: [acme-out]
  - match: {{ tenant: [beta] }}
    to: [beta-out]
""", stream=stream)


def plain_config(stream="heartbeat: 30s", connectors="", routes="",
                 policies=""):
    """One tenant (default), a generic source and an alertmanager one."""
    return base_config(f"""\
sources:
  gen:
    kind: generic
    verify: {{ bearer: {{ tokens: [{HOOK}] }} }}
  am:
    kind: alertmanager
    verify: {{ bearer: {{ tokens: [{HOOK}] }} }}
{connectors}{routes}{policies}""", stream=stream)


# ---- helpers ----------------------------------------------------------------

def post_hook(e, source, body, headers=None):
    h = {"Authorization": f"Bearer {HOOK}", "Content-Type": "application/json"}
    h.update(headers or {})
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, _, resp = e.request("POST", f"/v1/hooks/{source}", body=raw,
                                headers=h)
    assert status == 202, resp
    return json.loads(resp)["id"]


def admin_post(e, path, token=ADMIN):
    status, _, raw = e.request("POST", path, body=b"",
                               headers={"Authorization": f"Bearer {token}"})
    return status, json.loads(raw)


def stream_url(e, query=""):
    return f"ws://127.0.0.1:{e.port}/v1/stream" + (f"?{query}" if query else "")


def ws_connect(e, token=ADMIN, query=""):
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    return websockets.connect(stream_url(e, query), extra_headers=headers,
                              ping_interval=None, open_timeout=15,
                              close_timeout=5, max_size=2 ** 22,
                              max_queue=None)


def max_seq(db):
    return db_rows(db, "SELECT coalesce(max(seq), 0) FROM stream")[0][0]


class Reader:
    """Reads one websockets connection in the background, so the server
    never sees it as a slow consumer while the test waits elsewhere."""

    def __init__(self, ws):
        self.ws = ws
        self.msgs = []
        self.done = False
        self.task = asyncio.ensure_future(self._run())

    async def _run(self):
        try:
            async for m in self.ws:
                self.msgs.append(json.loads(m))
        except ConnectionClosed:
            pass
        finally:
            self.done = True

    def notes(self, type_=None, **fields):
        return [m for m in self.msgs
                if (type_ is None or m.get("type") == type_)
                and all(m.get(k) == v for k, v in fields.items())]

    async def wait(self, type_=None, n=1, timeout=30, **fields):
        """Wait for n notes of type_ with these fields; returns them."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.notes(type_, **fields)
            if len(got) >= n:
                return got
            if self.done:
                raise AssertionError(
                    f"connection closed ({self.ws.close_code} "
                    f"{self.ws.close_reason!r}) waiting for {n} {type_} "
                    f"{fields}; got:\n" + "\n".join(map(json.dumps, self.msgs)))
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"no {n} {type_} {fields} within {timeout}s; got:\n"
                    + "\n".join(map(json.dumps, self.msgs)))
            await asyncio.sleep(0.02)

    async def wait_seq(self, seq, timeout=30):
        deadline = time.monotonic() + timeout
        while not any(m.get("seq", 0) >= seq for m in self.msgs):
            if self.done or time.monotonic() > deadline:
                raise AssertionError(
                    f"never reached seq {seq} (closed={self.done}); got "
                    f"{[m.get('seq') for m in self.msgs]}")
            await asyncio.sleep(0.02)

    async def close(self):
        await self.ws.close()
        await asyncio.wait_for(self.task, 10)


async def open_reader(e, token=ADMIN, query=""):
    return Reader(await ws_connect(e, token, query))


def check_common(msgs):
    """Every message: a known type, an ISO time, seqs strictly increasing."""
    seqs = [m["seq"] for m in msgs]
    assert seqs == sorted(set(seqs)), f"seqs not strictly increasing: {seqs}"
    for m in msgs:
        assert m["type"] in NOTE_TYPES, m
        assert isinstance(m["seq"], int) and m["seq"] > 0, m
        assert ISO_MS.match(m["time"]), m


def consecutive(seqs):
    return seqs == list(range(seqs[0], seqs[0] + len(seqs))) if seqs else True


class RawWS:
    """A websocket client on a bare socket: the handshake by hand, frames
    built (and, on purpose, broken) with struct."""

    def __init__(self, port, query="", token=ADMIN, rcvbuf=None, timeout=15):
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(timeout)
        self.sock.connect(("127.0.0.1", port))
        key = base64.b64encode(os.urandom(16)).decode()
        path = "/v1/stream" + (f"?{query}" if query else "")
        auth = f"Authorization: Bearer {token}\r\n" if token else ""
        self.sock.sendall((f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
                           "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                           f"Sec-WebSocket-Key: {key}\r\n"
                           "Sec-WebSocket-Version: 13\r\n" + auth + "\r\n")
                          .encode())
        self.buf = b""
        while b"\r\n\r\n" not in self.buf:
            self._more()
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        assert lines[0].startswith("HTTP/1.1 101 "), head
        hdrs = {k.strip().lower(): v.strip()
                for k, v in (ln.split(":", 1) for ln in lines[1:])}
        want = base64.b64encode(hashlib.sha1((key + WS_GUID).encode())
                                .digest()).decode()
        assert hdrs["sec-websocket-accept"] == want
        assert hdrs["upgrade"].lower() == "websocket"

    def _more(self):
        data = self.sock.recv(65536)
        if not data:
            raise EOFError("the server closed the connection")
        self.buf += data

    def _take(self, n):
        while len(self.buf) < n:
            self._more()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def send_frame(self, opcode, payload=b"", fin=True, mask=True, rsv=0,
                   length=None):
        """One frame; length overrides the length field (payload may then
        be shorter than it says)."""
        n = len(payload) if length is None else length
        head = bytes([(0x80 if fin else 0) | rsv << 4 | opcode])
        mbit = 0x80 if mask else 0
        if n < 126:
            head += bytes([mbit | n])
        elif n < 65536:
            head += bytes([mbit | 126]) + struct.pack("!H", n)
        else:
            head += bytes([mbit | 127]) + struct.pack("!Q", n)
        if mask:
            key = os.urandom(4)
            payload = bytes(b ^ key[i % 4] for i, b in enumerate(payload))
            head += key
        self.sock.sendall(head + payload)

    def send_close(self, code=1000, reason=b""):
        self.send_frame(OP_CLOSE, struct.pack("!H", code) + reason)

    def recv_frame(self):
        """(fin, opcode, payload) of the next frame from the server."""
        b0, b1 = self._take(2)
        assert not b1 & 0x80, "a server frame must not be masked"
        assert not b0 & 0x70, "reserved bits set by the server"
        n = b1 & 0x7F
        if n == 126:
            n = struct.unpack("!H", self._take(2))[0]
        elif n == 127:
            n = struct.unpack("!Q", self._take(8))[0]
        return bool(b0 & 0x80), b0 & 0x0F, self._take(n)

    def recv_until(self, opcodes, answer_pings=False):
        """Frames until one with an opcode in opcodes; returns (that frame,
        the text messages before it)."""
        texts = []
        while True:
            fin, op, payload = self.recv_frame()
            if op in opcodes:
                return (fin, op, payload), texts
            if op == OP_TEXT:
                assert fin, "the server fragments nothing"
                texts.append(json.loads(payload))
            elif op == OP_PING and answer_pings:
                self.send_frame(OP_PONG, payload)

    def expect_close(self, code, reason=None):
        """Read up to the server's close frame: its code (and reason), then
        the end of the connection. Returns the text messages before it."""
        (_, _, payload), texts = self.recv_until({OP_CLOSE})
        got = struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
        assert got == code, f"close {got} {payload[2:]!r}, wanted {code}"
        if reason is not None:
            assert payload[2:].decode() == reason
        self.expect_eof()
        return texts

    def expect_eof(self):
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    return
        except ConnectionResetError:
            return

    def close(self):
        self.sock.close()


def raw_request(e, head_lines, method="GET", path="/v1/stream"):
    """A request with exactly these header lines (no others but Host):
    (status, headers dict lower-cased, body)."""
    with socket.create_connection(("127.0.0.1", e.port), timeout=10) as s:
        s.sendall((f"{method} {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                   + "".join(h + "\r\n" for h in head_lines) + "\r\n").encode())
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            assert chunk, data
            data += chunk
        head, body = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split()[1])
        hdrs = {}
        for ln in lines[1:]:
            k, v = ln.split(":", 1)
            hdrs.setdefault(k.strip().lower(), v.strip())
        n = int(hdrs.get("content-length", 0))
        while len(body) < n:
            chunk = s.recv(65536)
            assert chunk
            body += chunk
        return status, hdrs, body[:n]


GOOD_KEY = "dGhlIHNhbXBsZSBub25jZQ=="
HANDSHAKE = {"Upgrade": "websocket", "Connection": "Upgrade",
             "Sec-WebSocket-Key": GOOD_KEY, "Sec-WebSocket-Version": "13"}


def handshake_lines(drop=(), **change):
    h = dict(HANDSHAKE)
    for k in drop:
        h.pop(k)
    for k, v in change.items():
        h[k.replace("_", "-")] = v
    return [f"{k}: {v}" for k, v in h.items()]


# ---- the handshake ------------------------------------------------------------

def test_handshake_refusals(engine):
    e = engine(plain_config())
    auth = f"Authorization: Bearer {ADMIN}"

    def refused(lines, status, mentions=None, method="GET",
                path="/v1/stream"):
        got, hdrs, body = raw_request(e, lines, method, path)
        assert got == status, (lines, got, body)
        err = json.loads(body)["error"]
        if mentions:
            assert mentions in err["message"], err
        return hdrs, err

    hdrs, err = refused(handshake_lines() + [auth], 405, method="POST")
    assert hdrs["allow"] == "GET" and err["code"] == "method_not_allowed"
    refused(handshake_lines() + [auth], 405, method="PUT")
    # Each header of the handshake, missing or wrong: 400 naming it.
    _, err = refused(handshake_lines(drop=["Upgrade"]) + [auth], 400,
                     "Upgrade")
    assert err["code"] == "bad_handshake"
    refused(handshake_lines(Upgrade="h2c") + [auth], 400, "Upgrade")
    refused(handshake_lines(drop=["Connection"]) + [auth], 400, "Connection")
    refused(handshake_lines(Connection="keep-alive") + [auth], 400,
            "Connection")
    refused(handshake_lines(drop=["Sec-WebSocket-Key"]) + [auth], 400,
            "Sec-WebSocket-Key")
    refused(handshake_lines(Sec_WebSocket_Key="c2hvcnQ=") + [auth], 400,
            "Sec-WebSocket-Key")
    refused(handshake_lines(Sec_WebSocket_Key="not base64 at all!!!!!==")
            + [auth], 400, "Sec-WebSocket-Key")
    # The version: 426 and the one version served.
    for lines in (handshake_lines(drop=["Sec-WebSocket-Version"]),
                  handshake_lines(Sec_WebSocket_Version="8")):
        hdrs, err = refused(lines + [auth], 426, "Sec-WebSocket-Version")
        assert hdrs["sec-websocket-version"] == "13"
    # The handshake is checked before the token.
    refused(handshake_lines(drop=["Upgrade"]), 400, "Upgrade")
    refused(handshake_lines(drop=["Sec-WebSocket-Version"]), 426)
    # A good handshake without a token, or with a wrong one: 401.
    hdrs, err = refused(handshake_lines(), 401)
    assert hdrs["www-authenticate"] == "Bearer"
    assert err["code"] == "unauthorized"
    refused(handshake_lines() + ["Authorization: Bearer nope"], 401)
    refused(handshake_lines(), 401, path="/v1/stream?access_token=nope")
    refused(handshake_lines() + ["Authorization: Basic YTpi"], 401)
    # Parameters: unknown ones and bad values are refused.
    refused(handshake_lines() + [auth], 400, "unknown parameter 'colour'",
            path="/v1/stream?colour=red")
    refused(handshake_lines() + [auth], 400, "types: 'event.bogus'",
            path="/v1/stream?types=event.received,event.bogus")
    refused(handshake_lines() + [auth], 400, "since 'abc'",
            path="/v1/stream?since=abc")
    refused(handshake_lines() + [auth], 400, "since '-3'",
            path="/v1/stream?since=-3")
    # The token in the query works as well as the header.
    status, hdrs, _ = raw_request(e, handshake_lines(),
                                  path=f"/v1/stream?access_token={ADMIN}")
    assert status == 101
    assert hdrs["sec-websocket-accept"] == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert hdrs["upgrade"].lower() == "websocket"
    assert e.stop() == 0


def test_no_token_configured_is_403(engine):
    e = engine(base_config(f"""\
sources:
  gen:
    kind: generic
    verify: {{ bearer: {{ tokens: [{HOOK}] }} }}
""", admin=False))
    for lines in (handshake_lines(),
                  handshake_lines() + [f"Authorization: Bearer {ADMIN}"]):
        status, _, body = raw_request(e, lines)
        assert status == 403, body
        assert json.loads(body)["error"]["code"] == "admin_closed"
    assert e.stop() == 0


# ---- who sees what ------------------------------------------------------------

def test_tenants_see_only_their_own_notes(engine):
    async def run(e):
        acme = await open_reader(e, ACME)
        acme_q = await open_reader(e, None, f"access_token={ACME}")
        beta = await open_reader(e, BETA)
        acme_asks_beta = await open_reader(e, ACME, "tenant=beta")
        admin = await open_reader(e, ADMIN)
        admin_beta = await open_reader(e, ADMIN, "tenant=beta")
        a_id = post_hook(e, "acme-src", {"title": "acme's"})
        b_id = post_hook(e, "beta-src", {"title": "beta's"})
        for ev in (a_id, b_id):
            await admin.wait("delivery.state", event_id=ev, state="delivered")
        for name in ("acme-out", "beta-out"):
            assert admin_post(e, f"/v1/connectors/{name}/pause")[0] == 200
            assert admin_post(e, f"/v1/connectors/{name}/resume")[0] == 200
        # A tenant may pause its own connector, not the other's.
        assert admin_post(e, "/v1/connectors/acme-out/pause", ACME)[0] == 200
        assert admin_post(e, "/v1/connectors/beta-out/pause", ACME)[0] == 404
        assert admin_post(e, "/v1/connectors/acme-out/resume", ACME)[0] == 200
        # The last note: every client was offered everything before it.
        marker = post_hook(e, "acme-src", {"title": "last"})
        await admin.wait("event.normalized", event_id=marker)
        await acme.wait("event.normalized", event_id=marker)
        await acme_q.wait("event.normalized", event_id=marker)
        await asyncio.sleep(0.5)
        for r in (acme, acme_q, beta, acme_asks_beta, admin, admin_beta):
            await r.close()
        return acme, acme_q, beta, acme_asks_beta, admin, admin_beta

    with Sink() as sink:
        e = engine(tenants_config(sink))
        acme, acme_q, beta, acme_asks_beta, admin, admin_beta = \
            asyncio.run(run(e))
        assert e.stop() == 0

    for r in (acme, acme_q, beta, admin, admin_beta):
        check_common(r.msgs)
    # The admin saw everything, in order, nothing missing.
    assert consecutive([m["seq"] for m in admin.msgs])
    assert {m.get("tenant") for m in admin.msgs if "tenant" in m} == \
        {"acme", "beta"}
    # acme: its event's notes and its connector's states, nothing of beta.
    for m in acme.msgs:
        if m["type"] == "connector.state":
            assert m["connector"] == "acme-out", m
        else:
            assert m["tenant"] == "acme", m
    assert [(m["state"]) for m in acme.notes("connector.state")] == \
        ["paused", "resumed", "paused", "resumed"]
    assert {m["type"] for m in acme.msgs} == NOTE_TYPES - {"event.unparsed"}
    assert [m["seq"] for m in acme_q.msgs] == [m["seq"] for m in acme.msgs]
    assert acme.msgs == [m for m in admin.msgs
                         if m.get("tenant") == "acme"
                         or m.get("connector") == "acme-out"
                         and m["type"] == "connector.state"]
    # beta: the mirror image.
    for m in beta.msgs:
        if m["type"] == "connector.state":
            assert m["connector"] == "beta-out", m
        else:
            assert m["tenant"] == "beta", m
    assert [m["state"] for m in beta.notes("connector.state")] == \
        ["paused", "resumed"]
    assert beta.notes("delivery.state", state="delivered")
    # acme's token asking for beta's notes gets nothing at all.
    assert acme_asks_beta.msgs == []
    # The admin narrowed to beta sees exactly what beta sees.
    assert admin_beta.msgs == beta.msgs


def test_filters(engine):
    async def run(e):
        readers = {q: await open_reader(e, ADMIN, q) for q in (
            "types=event.received,connector.state",
            "types=delivery.state",
            "source=acme-src",
            "connector=acme-out",
            "source=acme-am&types=event.unparsed",
            "tenant=acme&types=event.normalized")}
        admin = await open_reader(e)
        a = post_hook(e, "acme-src", {"title": "a"})
        b = post_hook(e, "beta-src", {"title": "b"})
        u = post_hook(e, "acme-am", b'{"alerts":"no list"}')
        for ev in (a, b):
            await admin.wait("delivery.state", event_id=ev, state="delivered")
        await admin.wait("event.unparsed", event_id=u)
        for name in ("acme-out", "beta-out"):
            assert admin_post(e, f"/v1/connectors/{name}/pause")[0] == 200
        marker = post_hook(e, "beta-src", {"title": "marker"})
        await admin.wait("event.normalized", event_id=marker)
        await asyncio.sleep(0.5)
        for r in [*readers.values(), admin]:
            await r.close()
        return readers, admin

    with Sink() as sink:
        e = engine(tenants_config(sink))
        readers, admin = asyncio.run(run(e))
        assert e.stop() == 0
    everything = admin.msgs
    check_common(everything)
    assert consecutive([m["seq"] for m in everything])

    def expect(query, pred):
        got = readers[query].msgs
        check_common(got)
        want = [m for m in everything if pred(m)]
        assert want, query
        assert got == want, query

    expect("types=event.received,connector.state",
           lambda m: m["type"] in ("event.received", "connector.state"))
    expect("types=delivery.state", lambda m: m["type"] == "delivery.state")
    expect("source=acme-src", lambda m: m.get("source") == "acme-src")
    # connector=: the deliveries to it and its states; nothing else.
    expect("connector=acme-out", lambda m: m.get("connector") == "acme-out"
           and m["type"] in ("delivery.state", "connector.state"))
    expect("source=acme-am&types=event.unparsed",
           lambda m: m["type"] == "event.unparsed")
    expect("tenant=acme&types=event.normalized",
           lambda m: m["type"] == "event.normalized"
           and m["tenant"] == "acme")


# ---- every kind of message ------------------------------------------------------

def test_event_notes_carry_their_fields(engine):
    async def run(e):
        r = await open_reader(e)
        gen = post_hook(e, "gen", {"title": "disk full", "severity": "critical"},
                        headers={"X-Request-ID": "corr-stream-1"})
        alerts = {"receiver": "x", "status": "firing", "alerts": [
            {"status": "firing", "labels": {"alertname": "A", "severity": "warning"}},
            {"status": "firing", "labels": {"alertname": "B", "severity": "critical"}}]}
        am = post_hook(e, "am", alerts)
        bad = post_hook(e, "am", b'{"receiver":"x","status":"firing","alerts":"not a list"}')
        await r.wait("event.normalized", event_id=gen)
        await r.wait("event.normalized", event_id=am)
        await r.wait("event.unparsed", event_id=bad)
        await r.wait("delivery.state", n=3, state="delivered")
        await r.close()
        return r, gen, am, bad

    with Sink() as sink:
        e = engine(plain_config(connectors=f"""\
connectors:
  out:
    plugin: webhook
    url: {sink.url()}
  other:
    plugin: webhook
    url: {sink.url("/other")}
""", routes="""\
routes:
  - match: { source: [gen] }
    to: [out, other]
  - name: am-route
    match: { source: [am] }
    to: [out]
"""))
        r, gen, am, bad = asyncio.run(run(e))
        db = e.config_path.parent / "hookline.db"
        assert e.stop() == 0
    check_common(r.msgs)
    assert consecutive([m["seq"] for m in r.msgs])

    (rec,) = r.notes("event.received", event_id=gen)
    assert {k: rec[k] for k in ("event_id", "tenant", "source",
                                "correlation_id")} == {
        "event_id": gen, "tenant": "default", "source": "gen",
        "correlation_id": "corr-stream-1"}
    assert set(rec) == {"seq", "type", "time", "event_id", "tenant", "source",
                        "correlation_id"}
    for ev in (am, bad):
        (rec,) = r.notes("event.received", event_id=ev)
        assert rec["source"] == "am" and rec["correlation_id"]

    (norm,) = r.notes("event.normalized", event_id=gen)
    assert (norm["tenant"], norm["source"]) == ("default", "gen")
    (one,) = norm["events"]
    assert (one["id"], one["type"], one["severity"]) == (gen, "message",
                                                           "critical")
    assert one["route"] == "route-1"
    assert sorted(d["connector"] for d in one["deliveries"]) == ["other", "out"]
    stored = dict(db_rows(db, "SELECT id, connector FROM deliveries "
                              "WHERE event_id = ?", (gen,)))
    assert {d["id"]: d["connector"] for d in one["deliveries"]} == stored

    (norm,) = r.notes("event.normalized", event_id=am)
    assert [(x["id"], x["type"], x["severity"], x["route"])
            for x in norm["events"]] == [
        (f"{am}-1", "alert.firing", "warning", "am-route"),
        (f"{am}-2", "alert.firing", "critical", "am-route")]
    assert all(len(x["deliveries"]) == 1 for x in norm["events"])

    (unp,) = r.notes("event.unparsed", event_id=bad)
    assert {k: unp[k] for k in ("event_id", "tenant", "source", "reason")} == {
        "event_id": bad, "tenant": "default", "source": "am",
        "reason": "split: the payload has no list there (found another "
                  "kind of value)"}
    assert not r.notes("event.normalized", event_id=bad)
    # Every note of an event comes after its event.received.
    first = {m["event_id"]: m["seq"] for m in r.notes("event.received")}
    for m in r.msgs:
        assert m["seq"] >= first[m["event_id"]]


def test_delivery_and_connector_states(engine, tmp_path):
    """One webhook routed to six connectors, each answered differently:
    every delivery.state and connector.state there is, with its fields."""
    async def run(e, sink):
        r = await open_reader(e)
        ev = post_hook(e, "gen", {"title": "fan out"})
        await r.wait("delivery.state", connector="ok", state="delivered")
        await r.wait("delivery.state", connector="retry", state="retrying")
        await r.wait("delivery.state", connector="fail", state="failed")
        await r.wait("delivery.state", connector="old", state="expired")
        await r.wait("connector.state", connector="gone", state="disabled")
        await r.wait("connector.state", connector="flap", state="circuit_open")
        await r.wait("connector.state", connector="flap",
                     state="circuit_closed")
        await r.wait("delivery.state", connector="flap", state="delivered")
        assert admin_post(e, "/v1/connectors/ok/pause")[0] == 200
        assert admin_post(e, "/v1/connectors/ok/resume")[0] == 200
        await r.wait("connector.state", connector="ok", state="resumed")
        # An operator's replay puts the failed delivery back in line.
        status, body = admin_post(e, "/v1/replay?connector=fail")
        assert (status, body) == (202, {"replayed": 1})
        await r.wait("delivery.state", connector="fail", state="queued")
        await r.wait("delivery.state", n=2, connector="fail", state="failed")
        await r.close()
        return r, ev

    with Sink() as sink:
        sink.respond_on("/retry", 503, b"busy")
        sink.respond_on("/old", 503, b"busy")
        sink.respond_on("/fail", 422, b'{"error":"no"}')
        sink.respond_on("/gone", 410, b"gone")
        sink.script_on("/flap", [Answer(503, b"down")])

        def conn(name, policy=None):
            return (f"  {name}:\n    plugin: webhook\n"
                    f"    url: {sink.url('/' + name)}\n"
                    + (f"    policy: {policy}\n" if policy else ""))
        e = engine(plain_config(
            connectors="connectors:\n" + conn("ok") + conn("retry", "once")
            + conn("fail") + conn("old", "young") + conn("gone", "once")
            + conn("flap", "flappy"),
            routes="routes:\n  - to: [ok, retry, fail, old, gone, flap]\n",
            policies="""\
policies:
  once: { retry: { schedule: [0s, 1h], jitter: 0 } }
  young: { retry: { schedule: [0s, 1h], max_age: 1s, jitter: 0 } }
  flappy:
    retry: { schedule: [0s, 100ms], jitter: 0 }
    circuit: { failures: 1, cooldown: 300ms }
"""))
        r, ev = asyncio.run(run(e, sink))
        assert e.stop() == 0
    check_common(r.msgs)
    assert consecutive([m["seq"] for m in r.msgs])
    db = tmp_path / "hookline.db"
    ids = dict(db_rows(db, "SELECT connector, id FROM deliveries"))
    (canon,) = {c for (c,) in db_rows(db, "SELECT id FROM canonical")}
    ds = r.notes("delivery.state")
    for m in ds:
        assert m["delivery_id"] == ids[m["connector"]], m
        assert (m["event_id"], m["canonical_id"], m["tenant"], m["source"]) \
            == (ev, canon, "default", "gen"), m
        assert isinstance(m["attempt"], int)

    def only(connector, state, n=1):
        got = r.notes("delivery.state", connector=connector, state=state)
        assert len(got) == n, (connector, state, got)
        return got

    (ok,) = only("ok", "delivered")
    assert (ok["attempt"], ok["status"]) == (1, 200)
    assert "next_attempt_at" not in ok and ok["error_class"] is None
    (rt,) = only("retry", "retrying")
    assert (rt["attempt"], rt["status"], rt["error_class"]) == (1, 503,
                                                                "http_5xx")
    assert rt["reason"] == "HTTP 503"
    assert ISO_MS.match(rt["next_attempt_at"]) and rt["next_attempt_at"] > rt["time"]
    (fl, fl2) = only("fail", "failed", 2)
    assert (fl["attempt"], fl["status"], fl["error_class"], fl["reason"]) == (
        1, 422, "http_4xx", "HTTP 422")
    assert "next_attempt_at" not in fl
    assert fl2["status"] == 422 and fl2["attempt"] == 2
    (q,) = only("fail", "queued")
    assert fl["seq"] < q["seq"] < fl2["seq"]
    assert (q["reason"], q["attempt"]) == ("replayed by an operator", 1)
    assert "status" not in q and "next_attempt_at" not in q
    (ex,) = only("old", "expired")
    assert (ex["attempt"], ex["status"], ex["error_class"]) == (1, 503,
                                                                "http_5xx")
    assert "next_attempt_at" not in ex
    (fr, fd) = [m for m in ds if m["connector"] == "flap"]
    assert (fr["state"], fr["status"], fd["state"], fd["status"],
            fd["attempt"]) == ("retrying", 503, "delivered", 200, 2)

    cs = r.notes("connector.state")
    for m in cs:
        assert set(m) <= {"seq", "type", "time", "connector", "state",
                          "reason"}, m
    assert [(m["connector"], m["state"]) for m in cs
            if m["connector"] == "flap"] == [("flap", "circuit_open"),
                                             ("flap", "circuit_closed")]
    (op,) = r.notes("connector.state", connector="flap", state="circuit_open")
    assert op["reason"] == "consecutive failures"
    (cl,) = r.notes("connector.state", connector="flap",
                    state="circuit_closed")
    # Each change of the circuit follows the attempt that made it.
    assert fr["seq"] < op["seq"] < fd["seq"] < cl["seq"]
    (dis,) = r.notes("connector.state", connector="gone")
    assert dis["state"] == "disabled" and dis["reason"].startswith("HTTP 410")
    (gone,) = only("gone", "retrying")
    assert (gone["status"], gone["error_class"]) == (410, "http_4xx")
    assert [(m["state"], m["reason"]) for m in cs if m["connector"] == "ok"] \
        == [("paused", "by the admin API"), ("resumed", None)]


# ---- resuming -----------------------------------------------------------------

def test_since_replays_stored_notes_then_live_without_gap(engine, tmp_path):
    db = tmp_path / "hookline.db"

    async def live_after(e, since, upto, post_more):
        """Connect with since=, read to upto, post more, read those."""
        r = await open_reader(e, ADMIN, f"since={since}")
        if upto > since:
            await r.wait_seq(upto)
        ids = [post_hook(e, "gen", {"title": f"live {i}"})
               for i in range(post_more)]
        for ev in ids:
            await r.wait("event.normalized", event_id=ev)
        await asyncio.sleep(0.3)
        await r.close()
        check_common(r.msgs)
        return [m["seq"] for m in r.msgs]

    e = engine(plain_config())
    for i in range(3):
        post_hook(e, "gen", {"title": f"stored {i}"})
    wait_rows(db, "SELECT count(*) FROM stream", [(6,)])
    assert asyncio.run(live_after(e, 0, 6, 1)) == list(range(1, 9))
    assert asyncio.run(live_after(e, 5, 8, 1)) == list(range(6, 11))
    # since= the very last: only what comes next.
    assert asyncio.run(live_after(e, 10, 10, 1)) == [11, 12]
    assert e.stop() == 0
    # After a restart the notes come from the store alone.
    again = Engine(e.config_path, cwd=tmp_path).start()
    try:
        assert asyncio.run(live_after(again, 2, 12, 2)) == list(range(3, 17))
    finally:
        assert again.stop() == 0


def _flood(e, db, stop, limit=5000, ahead=8):
    """Post webhooks from a few threads until stop is set, keeping at most
    about `ahead` of them waiting to be normalized. Each has a sizable body
    whose type, 20 kB of it, goes into its event.normalized: the notes soon
    outgrow any socket buffer."""
    body = json.dumps({"type": "flood." + "a" * 20000,
                       "title": "flood"}).encode()
    count = iter(range(limit))

    def waiting():
        try:
            return db_rows(db, "SELECT count(*) FROM events "
                               "WHERE state = 'received'")[0][0]
        except sqlite3.OperationalError:
            return 0

    def worker():
        for _ in count:
            while not stop.is_set() and waiting() >= ahead:
                time.sleep(0.005)
            if stop.is_set():
                return
            post_hook(e, "gen", body)

    threads = [threading.Thread(target=worker, daemon=True) for _ in range(3)]
    for t in threads:
        t.start()
    return threads


def test_slow_consumer_is_told_it_lagged_and_resumes_without_gap(engine,
                                                                 tmp_path):
    db = tmp_path / "hookline.db"
    e = engine(plain_config(stream="heartbeat: 30s, client_buffer: 2"))
    post_hook(e, "gen", {"title": "before"})
    wait_rows(db, "SELECT count(*) FROM stream", [(2,)])
    slow = RawWS(e.port, rcvbuf=4096)  # then reads nothing for a while
    log_at = len(e.log())
    stop = threading.Event()
    flood = _flood(e, db, stop)
    try:
        # Read as soon as the engine says it gave up on the client: what it
        # queued goes out within its close delay.
        e.wait_log(r"client too slow; told it lagged", timeout=120,
                   start=log_at)
        (_, _, payload), texts = slow.recv_until({OP_CLOSE})
    finally:
        stop.set()
        for t in flood:
            t.join(120)
    code = struct.unpack("!H", payload[:2])[0]
    assert (code, payload[2:]) == (1008, b"lagged")
    slow.expect_eof()
    slow.close()
    lag = texts[-1]
    assert lag["type"] == "lagged", texts[-3:]
    assert lag["hint"] == f"reconnect with since={lag['last_seq']}"
    notes = texts[:-1]
    assert notes, "nothing arrived before the lag"
    check_common(notes)
    seqs = [m["seq"] for m in notes]
    assert seqs[0] == 3, seqs[:5]
    assert consecutive(seqs), seqs
    assert seqs[-1] == lag["last_seq"]
    assert not any(m.get("type") == "lagged" for m in notes)
    # Everything the flood made is stored; resume from the lag to the end.
    wait_rows(db, "SELECT count(*) FROM events WHERE state = 'received'",
              [(0,)], timeout=120)
    last = max_seq(db)
    assert last > lag["last_seq"]

    async def resume():
        r = await open_reader(e, ADMIN, f"since={lag['last_seq']}")
        await r.wait_seq(last, timeout=120)
        await asyncio.sleep(0.2)
        await r.close()
        return r.msgs

    got = asyncio.run(resume())
    check_common(got)
    assert [m["seq"] for m in got] == list(range(lag["last_seq"] + 1,
                                                  last + 1))
    stored = [json.loads(b) for (b,) in db_rows(
        db, "SELECT body FROM stream WHERE seq > ? ORDER BY seq",
        (lag["last_seq"],))]
    assert got == stored
    assert e.stop() == 0


def test_a_burst_does_not_lag_a_client_that_keeps_up(engine, tmp_path):
    """A client that reads everything at once is not slow, whatever the size
    of one commit: client_buffer bounds what is not yet on the socket."""
    async def run(e):
        r = await open_reader(e)
        status, body = admin_post(e, "/v1/replay?state=delivered")
        assert (status, body) == (202, {"replayed": 8})
        await r.wait("delivery.state", n=8, state="queued", timeout=20)
        await r.close()
        return r

    with Sink() as sink:
        e = engine(plain_config(
            stream="heartbeat: 30s, client_buffer: 2",
            connectors=f"connectors:\n  out:\n    plugin: webhook\n"
                       f"    url: {sink.url()}\n",
            routes="routes:\n  - to: [out]\n"))
        for i in range(8):
            post_hook(e, "gen", {"title": f"t{i}"})
        wait_rows(tmp_path / "hookline.db",
                  "SELECT count(*) FROM deliveries WHERE state = 'delivered'",
                  [(8,)])
        try:
            r = asyncio.run(run(e))
        finally:
            assert e.stop() == 0
    assert not [m for m in r.msgs if m.get("type") == "lagged"]


# ---- the protocol ---------------------------------------------------------------

def test_ping_gets_its_pong_and_close_is_echoed(engine):
    e = engine(plain_config())
    c = RawWS(e.port)
    c.send_frame(OP_PING, b"ping-payload-123")
    (fin, op, payload), texts = c.recv_until({OP_PONG})
    assert (fin, payload, texts) == (True, b"ping-payload-123", [])
    c.send_frame(OP_PING, b"")
    assert c.recv_until({OP_PONG})[0][2] == b""
    c.send_frame(OP_PING, bytes(range(125)))
    assert c.recv_until({OP_PONG})[0][2] == bytes(range(125))
    # A text message from the client is ignored; the feed goes on.
    c.send_frame(OP_TEXT, "héllo".encode())
    ev = post_hook(e, "gen", {"title": "still there"})
    (_, _, payload), texts = c.recv_until({OP_TEXT})
    note = json.loads(payload)
    assert (note["type"], note["event_id"]) == ("event.received", ev)
    c.send_close(1000, b"bye")
    c.expect_close(1000)
    c.close()
    # A close without a code is answered with one without a code.
    c = RawWS(e.port)
    c.send_frame(OP_CLOSE, b"")
    (_, _, payload), _ = c.recv_until({OP_CLOSE})
    assert payload == b""
    c.expect_eof()
    c.close()
    assert e.stop() == 0


def test_heartbeat_pings_and_drops_a_client_that_never_answers(engine):
    e = engine(plain_config(stream="heartbeat: 1s"))
    # One that never answers: pinged, then closed at the next beat.
    mute = RawWS(e.port)
    (_, op, payload), _ = mute.recv_until({OP_PING, OP_CLOSE})
    assert op == OP_PING and payload.isdigit()
    mute.expect_close(1008, "no pong to the last ping")
    mute.close()
    e.wait_log(r"client stopped answering pings; dropped")
    # One that answers stays through several beats.
    polite = RawWS(e.port)
    pings = []
    while len(pings) < 2:
        (_, op, payload), _ = polite.recv_until({OP_PING, OP_CLOSE})
        assert op == OP_PING, payload
        pings.append(int(payload))
        polite.send_frame(OP_PONG, payload)
    assert pings == sorted(pings)
    ev = post_hook(e, "gen", {"title": "after the beats"})
    (_, _, payload), _ = polite.recv_until({OP_TEXT, OP_CLOSE},
                                           answer_pings=True)
    assert json.loads(payload)["event_id"] == ev
    # An unsolicited pong is harmless.
    polite.send_frame(OP_PONG, b"unasked")
    polite.send_close(1000)
    (_, op, payload), _ = polite.recv_until({OP_CLOSE}, answer_pings=True)
    assert payload[:2] == struct.pack("!H", 1000)
    polite.close()
    assert e.stop() == 0


def test_fragmented_messages_are_reassembled(engine):
    e = engine(plain_config())
    c = RawWS(e.port)
    # Text in three fragments with a ping between them.
    c.send_frame(OP_TEXT, b"hel", fin=False)
    c.send_frame(OP_PING, b"between")
    c.send_frame(OP_CONT, "lo wör".encode()[:7], fin=False)  # splits the ö
    c.send_frame(OP_CONT, "lo wör".encode()[7:] + b"ld", fin=True)
    (_, _, payload), texts = c.recv_until({OP_PONG})
    assert payload == b"between" and texts == []
    # Binary in fragments, one byte at a time on the wire.
    frames = []
    for i, part in enumerate((b"\x00\x01", b"\xff", b"\xfe")):
        head = bytes([(0x80 if i == 2 else 0) | (OP_BINARY if i == 0 else 0),
                      0x80 | len(part)]) + b"\0\0\0\0"
        frames.append(head + part)
    for byte in b"".join(frames):
        c.sock.sendall(bytes([byte]))
    # A fragmented message just under the limit is fine.
    c.send_frame(OP_TEXT, b"a" * 40000, fin=False)
    c.send_frame(OP_CONT, b"b" * 25536, fin=True)
    c.send_frame(OP_PING, b"alive")
    assert c.recv_until({OP_PONG})[0][2] == b"alive"
    ev = post_hook(e, "gen", {"title": "after fragments"})
    (_, _, payload), _ = c.recv_until({OP_TEXT})
    assert json.loads(payload)["event_id"] == ev
    c.send_close()
    c.expect_close(1000)
    c.close()
    assert e.stop() == 0


def test_message_over_64k_closes_1009(engine):
    e = engine(plain_config())
    c = RawWS(e.port)
    c.send_frame(OP_TEXT, b"z" * 65536)  # exactly the limit: accepted
    c.send_frame(OP_PING, b"ok")
    assert c.recv_until({OP_PONG})[0][2] == b"ok"
    c.send_frame(OP_TEXT, b"", length=65537)  # the head alone is enough
    c.expect_close(1009)
    c.close()
    # The limit counts a fragmented message as a whole.
    c = RawWS(e.port)
    c.send_frame(OP_BINARY, b"y" * 40000, fin=False)
    c.send_frame(OP_CONT, b"", fin=True, length=30000)
    c.expect_close(1009)
    c.close()
    assert e.stop() == 0


def test_invalid_utf8_closes_1007(engine):
    e = engine(plain_config())
    for name, payload in (("ff", b"\xff\xfe"), ("truncated", b"caf\xc3"),
                          ("surrogate", b"\xed\xa0\x80"),
                          ("overlong", b"\xc0\xaf"),
                          ("above 10ffff", b"ok \xf4\x90\x80\x80")):
        for fragmented in (False, True):
            c = RawWS(e.port)
            if fragmented:  # split across fragments, still checked
                c.send_frame(OP_TEXT, b"fine ", fin=False)
                c.send_frame(OP_CONT, payload, fin=True)
            else:
                c.send_frame(OP_TEXT, payload)
            try:
                c.expect_close(1007)
            except AssertionError as err:
                raise AssertionError(f"{name} (fragmented={fragmented}): "
                                     f"{err}") from None
            c.close()
    assert e.stop() == 0


def test_protocol_errors_close_1002(engine):
    e = engine(plain_config())
    cases = [
        ("unmasked", lambda c: c.send_frame(OP_TEXT, b"hi", mask=False)),
        ("unmasked ping", lambda c: c.send_frame(OP_PING, b"", mask=False)),
        ("reserved bit", lambda c: c.send_frame(OP_TEXT, b"hi", rsv=4)),
        ("unknown opcode", lambda c: c.send_frame(3, b"hi")),
        ("lone continuation", lambda c: c.send_frame(OP_CONT, b"hi")),
        ("fragmented ping", lambda c: c.send_frame(OP_PING, b"p", fin=False)),
        ("long ping", lambda c: c.send_frame(OP_PING, b"p" * 126)),
        ("new text inside a fragmented one",
         lambda c: (c.send_frame(OP_TEXT, b"a", fin=False),
                    c.send_frame(OP_TEXT, b"b"))),
        ("bad close code", lambda c: c.send_close(999)),
        ("one-byte close", lambda c: c.send_frame(OP_CLOSE, b"\x03")),
    ]
    for name, send in cases:
        c = RawWS(e.port)
        send(c)
        try:
            c.expect_close(1002)
        except AssertionError as err:
            raise AssertionError(f"{name}: {err}") from None
        c.close()
    # A close whose reason is not UTF-8: 1007.
    c = RawWS(e.port)
    c.send_close(1000, b"\xc3(")
    c.expect_close(1007)
    c.close()
    assert e.stop() == 0


# ---- shutdown --------------------------------------------------------------------

def test_shutdown_closes_clients_1001(engine):
    e = engine(plain_config())
    raw = RawWS(e.port)

    async def run():
        ws = await ws_connect(e)
        r = Reader(ws)
        ev = post_hook(e, "gen", {"title": "before the end"})
        await r.wait("event.normalized", event_id=ev)
        e.send(signal.SIGTERM)
        await asyncio.wait_for(r.task, 15)
        return ws.close_code, ws.close_reason

    assert asyncio.run(run()) == (1001, "hookline is shutting down")
    raw.expect_close(1001, "hookline is shutting down")
    raw.close()
    assert e.proc.wait(30) == 0
    assert e.stop() == 0


# ---- a real browser ---------------------------------------------------------------

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


class PageServer:
    """Serves ws_page.html on loopback; the page reports back on /report,
    and its last script (/hold) is answered only when release() is called,
    so the page's load -- and chromium's --dump-dom -- waits for the test."""

    def __init__(self):
        self.reports = []
        self.cond = threading.Condition()
        self.released = threading.Event()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_GET(self):
                url = urllib.parse.urlsplit(self.path)
                if url.path == "/ws_page.html":
                    self._send(200, "text/html; charset=utf-8",
                               (HERE / "ws_page.html").read_bytes())
                elif url.path == "/report":
                    with outer.cond:
                        outer.reports.append(dict(urllib.parse.parse_qsl(url.query)))
                        outer.cond.notify_all()
                    self._send(204, "text/plain", b"")
                elif url.path == "/hold":
                    outer.released.wait(90)
                    self._send(200, "text/javascript", b"/* released */\n")
                else:
                    self._send(404, "text/plain", b"not here")

            def _send(self, status, ctype, body):
                self.send_response(status)
                self.send_header("Content-Type", ctype)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def wait_report(self, pred, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while True:
                for r in self.reports:
                    if pred(r):
                        return r
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"page reports: {self.reports}")
                self.cond.wait(left)

    def close(self):
        self.released.set()
        self.httpd.shutdown()
        self.httpd.server_close()


@pytest.mark.skipif(not os.access(CHROMIUM, os.X_OK),
                    reason="Debian package chromium")
def test_browser_websocket_sees_the_delivery(engine, tmp_path):
    with Sink() as sink:
        e = engine(plain_config(
            connectors=f"connectors:\n  out:\n    plugin: webhook\n"
                       f"    url: {sink.url()}\n",
            routes="routes:\n  - to: [out]\n"))
        page = PageServer()
        query = urllib.parse.urlencode({"port": e.port, "token": ADMIN})
        url = f"http://127.0.0.1:{page.port}/ws_page.html?{query}"
        out = tmp_path / "dom.html"
        err = tmp_path / "chromium.log"
        with open(out, "wb") as fout, open(err, "wb") as ferr:
            browser = subprocess.Popen(
                [CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-quic", "--no-first-run",
                 "--disable-background-networking",
                 "--disable-component-update", "--disable-sync",
                 "--disable-dev-shm-usage",
                 f"--user-data-dir={tmp_path / 'profile'}",
                 "--virtual-time-budget=60000", "--dump-dom", url],
                stdout=fout, stderr=ferr, stdin=subprocess.DEVNULL)
        def wait_report(state, timeout):
            try:
                return page.wait_report(lambda r: r.get("state") == state,
                                        timeout)
            except AssertionError as why:
                raise AssertionError(f"{why}\nchromium: {err.read_text()}"
                                     f"\nhookline: {e.log()}") from None

        try:
            wait_report("open", 60)
            status, _, metrics = e.request("GET", "/metrics")
            assert b"\nhookline_stream_clients 1\n" in metrics
            ev = post_hook(e, "gen", {"title": "seen by a browser"})
            sink.wait_for(1)
            rep = wait_report("delivered", 30)
            assert rep["event"] == ev
            page.released.set()
            assert browser.wait(60) == 0, err.read_text()
        finally:
            if browser.poll() is None:
                browser.kill()
                browser.wait()
            page.close()
        dom = out.read_text()
        assert e.stop() == 0
    assert f'<li id="delivered-{ev}"' in dom, dom
    assert f"{ev} delivered out 200" in dom, dom
    assert f"<title>delivered {ev}</title>" in dom, dom
