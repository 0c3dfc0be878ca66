"""The HTTP/1.1 server as a client meets it, over real loopback sockets:
keep-alive, pipelining, chunked bodies, 100-continue, limits and timeouts,
malformed input, and the webhook intake's answers (statuses, error bodies,
headers, and what ends up in the store)."""
import json
import random
import re
import signal
import socket
import sqlite3
import threading
import time

import pytest

TOKEN = "hl-e2e-token-7f3a9c51"
ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")
SOURCE_DEMO = f"""\
sources:
  demo:
    kind: generic
    idempotency_header: X-Delivery
    verify: {{ bearer: {{ tokens: [{TOKEN}] }} }}
"""
RECV_TIMEOUT = 10


def config(server="", storage="", sources=SOURCE_DEMO):
    """A whole configuration on a free port; server/storage are extra keys,
    one per line, without indentation."""
    def indent(text):
        return "".join(f"  {line}\n" for line in text.splitlines())
    return ("server:\n  listen: 127.0.0.1:0\n" + indent(server) +
            "storage:\n  path: ./hookline.db\n" + indent(storage) + sources)


# ---- a raw HTTP/1.1 client -------------------------------------------------

class Response:
    def __init__(self, status, reason, headers, body, raw):
        self.status = status
        self.reason = reason
        self.headers = headers  # lower-cased name -> value
        self.body = body
        self.raw = raw

    def json(self):
        return json.loads(self.body)

    def error(self):
        """(code, message) of a JSON error body."""
        doc = self.json()
        assert set(doc) == {"error"}, doc
        assert set(doc["error"]) == {"code", "message"}, doc
        return doc["error"]["code"], doc["error"]["message"]

    def __repr__(self):
        return f"<Response {self.status} {self.raw[:300]!r}>"


class Client:
    """One connection; reads responses one at a time, so pipelined answers
    can be taken apart."""

    def __init__(self, port, timeout=RECV_TIMEOUT):
        self.sock = socket.create_connection(("127.0.0.1", port),
                                             timeout=timeout)
        self.sock.settimeout(timeout)
        self.buf = b""
        self.eof = False

    def send(self, data):
        self.sock.sendall(data)

    def close(self):
        self.sock.close()

    def _fill(self):
        """Read more bytes into buf; False at EOF (or a reset)."""
        if self.eof:
            return False
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    def response(self, head=False):
        """Exactly one response; None if the connection closed before its
        first byte. Fails on anything that is not a well-formed response."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                assert self.buf == b"", f"truncated response: {self.buf!r}"
                return None
        end = self.buf.index(b"\r\n\r\n") + 4
        head_bytes, self.buf = self.buf[:end], self.buf[end:]
        lines = head_bytes[:-4].decode("latin-1").split("\r\n")
        m = re.fullmatch(r"HTTP/1\.1 (\d{3}) ([^\r\n]*)", lines[0])
        assert m, f"bad status line: {lines[0]!r}"
        status = int(m.group(1))
        headers = {}
        for line in lines[1:]:
            name, sep, value = line.partition(":")
            assert sep and re.fullmatch(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+", name), \
                f"bad header line {line!r}"
            assert name.lower() not in headers, f"repeated header {name}"
            headers[name.lower()] = value.strip()
        if 100 <= status < 200:
            assert "content-length" not in headers
            return Response(status, m.group(2), headers, b"", head_bytes)
        assert re.fullmatch(r"\d+", headers.get("content-length", "")), \
            f"no valid Content-Length: {head_bytes!r}"
        n = 0 if head else int(headers["content-length"])
        while len(self.buf) < n:
            assert self._fill(), f"body cut short: {self.buf!r}"
        body, self.buf = self.buf[:n], self.buf[n:]
        return Response(status, m.group(2), headers, body, head_bytes + body)

    def closed(self, timeout=RECV_TIMEOUT):
        """True when the server closes the connection (nothing more sent)
        within timeout; False if it is still open then."""
        self.sock.settimeout(timeout)
        try:
            got = self._fill()
        except socket.timeout:
            return False
        finally:
            self.sock.settimeout(RECV_TIMEOUT)
        assert not got and self.buf == b"", \
            f"unexpected bytes after the answer: {self.buf!r}"
        return True

    def still_open(self, wait=0.3):
        return not self.closed(timeout=wait)


def request_bytes(method, path, body=b"", headers=(), version="1.1"):
    lines = [f"{method} {path} HTTP/{version}", "Host: 127.0.0.1"]
    lines += [f"{k}: {v}" for k, v in headers]
    has_length = any(k.lower() in ("content-length", "transfer-encoding")
                     for k, _ in headers)
    if not has_length and (body or method in ("POST", "PUT")):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "surrogateescape") + body


def hook_bytes(body, headers=(), path="/v1/hooks/demo", token=TOKEN,
               ctype="application/json"):
    h = []
    if token is not None:
        h.append(("Authorization", f"Bearer {token}"))
    if ctype is not None:
        h.append(("Content-Type", ctype))
    return request_bytes("POST", path, body, h + list(headers))


def hook_headers(**extra):
    h = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    h.update(extra)
    return h


def assert_queued(r):
    assert r.status == 202, r
    doc = r.json()
    assert doc["status"] == "queued" and set(doc) == {"id", "status"}, doc
    assert ULID.match(doc["id"]), doc
    return doc["id"]


def assert_error(r, status, code):
    assert r is not None, "the connection closed without an answer"
    assert r.status == status, r
    assert r.headers["content-type"] == "application/json"
    got_code, message = r.error()
    assert got_code == code, r
    return message


def stored_events(tmp_path):
    """id -> body of every row in the store (read after the engine stops)."""
    db = sqlite3.connect(str(tmp_path / "hookline.db"))
    try:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        return {i: bytes(b) for i, b in
                db.execute("SELECT id, body FROM events")}
    finally:
        db.close()


# ---- 1. keep-alive ---------------------------------------------------------

def test_keep_alive_serves_several_requests_then_connection_close(engine, tmp_path):
    e = engine(config())
    c = Client(e.port)
    c.send(request_bytes("GET", "/healthz"))
    r = c.response()
    assert r.status == 200 and r.json() == {"status": "ok"}
    assert "connection" not in r.headers
    c.send(hook_bytes(b'{"n":1}'))
    first = assert_queued(c.response())
    c.send(request_bytes("GET", "/nope"))
    assert assert_error(c.response(), 404, "not_found") == "no route for /nope"
    assert c.still_open()
    c.send(request_bytes("GET", "/healthz", headers=[("Connection", "close")]))
    r = c.response()
    assert r.status == 200 and r.headers["connection"] == "close"
    assert c.closed()
    assert e.stop() == 0
    assert stored_events(tmp_path) == {first: b'{"n":1}'}


def test_http10_closes_unless_keep_alive_is_asked_for(engine):
    e = engine(config())
    c = Client(e.port)
    c.send(request_bytes("GET", "/healthz", version="1.0"))
    r = c.response()
    assert r.status == 200 and r.headers["connection"] == "close"
    assert c.closed()

    c = Client(e.port)
    for _ in range(2):
        c.send(request_bytes("GET", "/healthz", version="1.0",
                             headers=[("Connection", "keep-alive")]))
        r = c.response()
        assert r.status == 200
        assert r.headers.get("connection", "keep-alive").lower() == "keep-alive"
    assert c.still_open()
    c.close()


def test_nothing_is_answered_after_a_connection_close_response(engine):
    e = engine(config())
    c = Client(e.port)
    c.send(request_bytes("GET", "/healthz", headers=[("Connection", "close")]) +
           request_bytes("GET", "/nope"))
    r = c.response()
    assert r.status == 200 and r.headers["connection"] == "close"
    assert c.closed()


# ---- 2. pipelining ---------------------------------------------------------

def test_pipelined_requests_are_answered_in_order(engine, tmp_path):
    e = engine(config())
    plan = []
    data = b""
    for i in range(10):
        kind = ("health", "hook", "nope", "hook")[i % 4]
        plan.append(kind)
        if kind == "health":
            data += request_bytes("GET", "/healthz")
        elif kind == "nope":
            data += request_bytes("GET", "/nope")
        else:
            data += hook_bytes(json.dumps({"seq": i}).encode())
    c = Client(e.port)
    c.send(data)  # one write: all ten requests arrive together
    ids = []
    for i, kind in enumerate(plan):
        r = c.response()
        if kind == "health":
            assert r.status == 200 and r.json() == {"status": "ok"}, (i, r)
        elif kind == "nope":
            assert assert_error(r, 404, "not_found") == "no route for /nope"
        else:
            ids.append(assert_queued(r))
    assert len(ids) == 5
    assert ids == sorted(ids) and len(set(ids)) == 5, ids
    assert c.still_open()
    c.close()
    assert e.stop() == 0
    rows = stored_events(tmp_path)
    hook_seqs = [i for i, k in enumerate(plan) if k == "hook"]
    assert {k: json.loads(v)["seq"] for k, v in rows.items()} == \
        dict(zip(ids, hook_seqs))


def test_deep_pipeline_beyond_the_read_pause(engine):
    # More requests than the server keeps in flight per connection (64): it
    # stops reading, then resumes, and still answers all in order.
    e = engine(config())
    n = 150
    c = Client(e.port)
    c.send(b"".join(hook_bytes(b'{"i":%d}' % i) for i in range(n)))
    ids = [assert_queued(c.response()) for _ in range(n)]
    assert ids == sorted(ids) and len(set(ids)) == n
    c.send(request_bytes("GET", "/healthz"))
    assert c.response().status == 200
    c.close()
    assert e.stop() == 0


# ---- 3. chunked bodies -----------------------------------------------------

CHUNKED_HEAD = (b"POST /v1/hooks/demo HTTP/1.1\r\nHost: x\r\n"
                b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
                b"Content-Type: application/json\r\n"
                b"Transfer-Encoding: chunked\r\n\r\n")


def test_chunked_body_is_reassembled(engine, tmp_path):
    e = engine(config())
    c = Client(e.port)
    parts = [CHUNKED_HEAD, b'5\r\n{"a":\r\n', b"3;ext=yes\r\n123\r\n",
             b'A\r\n,"b":"xyz"\r\n', b"1\r\n}\r\n", b"0\r\n\r\n"]
    for p in parts:  # separate writes: the parser sees it piece by piece
        c.send(p)
        time.sleep(0.02)
    r = c.response()
    event_id = assert_queued(r)
    assert c.still_open()
    c.close()
    assert e.stop() == 0
    assert stored_events(tmp_path) == {event_id: b'{"a":123,"b":"xyz"}'}


def test_chunked_trailers_are_read_but_not_kept(engine, tmp_path):
    """Trailer fields after the last chunk end the request like any other;
    they are not request headers, so they are not stored with the event."""
    e = engine(config())
    c = Client(e.port)
    c.send(CHUNKED_HEAD + b'7\r\n{"t":1}\r\n0\r\nX-Trailer: yes\r\n'
           b"Another: one\r\n\r\n" + request_bytes("GET", "/healthz"))
    event_id = assert_queued(c.response())
    assert c.response().status == 200
    c.close()
    assert e.stop() == 0
    db = sqlite3.connect(tmp_path / "hookline.db")
    headers = json.loads(db.execute("SELECT headers FROM events WHERE id = ?",
                                    (event_id,)).fetchone()[0])
    db.close()
    assert "x-trailer" not in headers and "another" not in headers
    assert stored_events(tmp_path) == {event_id: b'{"t":1}'}


def test_chunked_body_over_max_body_is_413_and_closes(engine, tmp_path):
    e = engine(config(server="max_body: 2KiB"))
    c = Client(e.port)
    chunk = b"3E8\r\n" + b" " * 1000 + b"\r\n"  # 1000 bytes each
    c.send(CHUNKED_HEAD + chunk * 3 + b"0\r\n\r\n")
    msg = assert_error(c.response(), 413, "body_too_large")
    assert "server.max_body" in msg
    assert c.closed()
    assert e.request("GET", "/healthz")[0] == 200
    assert e.stop() == 0
    assert stored_events(tmp_path) == {}


# ---- 4. Expect: 100-continue -----------------------------------------------

def test_expect_100_continue(engine, tmp_path):
    e = engine(config(server="max_body: 2KiB"))
    body = b'{"expect":"continue"}'
    c = Client(e.port)
    c.send(request_bytes("POST", "/v1/hooks/demo", headers=[
        ("Authorization", f"Bearer {TOKEN}"),
        ("Content-Type", "application/json"), ("Expect", "100-continue"),
        ("Content-Length", str(len(body)))]))
    interim = c.response()
    assert interim.raw == b"HTTP/1.1 100 Continue\r\n\r\n"
    c.send(body)
    event_id = assert_queued(c.response())

    # Too large: refused at once; the body is never sent.
    big = Client(e.port)
    big.send(request_bytes("POST", "/v1/hooks/demo", headers=[
        ("Authorization", f"Bearer {TOKEN}"),
        ("Content-Type", "application/json"), ("Expect", "100-continue"),
        ("Content-Length", "4096")]))
    r = big.response()
    assert assert_error(r, 413, "body_too_large")
    assert r.headers["connection"] == "close"
    assert big.closed()
    assert e.stop() == 0
    assert stored_events(tmp_path) == {event_id: body}


# ---- 5. header size --------------------------------------------------------

def test_headers_over_16KiB_are_431_and_close(engine):
    e = engine(config())
    c = Client(e.port)
    c.send(request_bytes("GET", "/healthz", headers=[("X-Big", "a" * 17000)]))
    msg = assert_error(c.response(), 431, "headers_too_large")
    assert "16 KiB" in msg
    assert c.closed()

    # Many small headers add up the same way.
    c = Client(e.port)
    c.send(request_bytes("GET", "/healthz", headers=[
        (f"X-H{i}", "b" * 100) for i in range(200)]))
    assert_error(c.response(), 431, "headers_too_large")
    assert c.closed()

    # Just under the limit is fine, and the connection stays usable.
    c = Client(e.port)
    c.send(request_bytes("GET", "/healthz", headers=[("X-Big", "a" * 16000)]))
    assert c.response().status == 200
    c.send(request_bytes("GET", "/healthz"))
    assert c.response().status == 200
    assert c.still_open()
    c.close()
    assert e.stop() == 0


# ---- 6. body size ----------------------------------------------------------

def test_content_length_over_max_body_is_413_without_waiting(engine, tmp_path):
    e = engine(config(server="max_body: 2KiB"))
    c = Client(e.port)
    # Headers only: an answer at all shows the server did not wait for a body.
    c.send(hook_bytes(b"")[:-len(b"Content-Length: 0\r\n\r\n")] +
           b"Content-Length: 2049\r\n\r\n")
    r = c.response()
    msg = assert_error(r, 413, "body_too_large")
    assert "server.max_body" in msg
    assert r.headers["connection"] == "close"
    assert c.closed()

    # Exactly max_body is accepted.
    body = b'{"pad":"' + b"x" * (2048 - 10) + b'"}'
    assert len(body) == 2048
    status, _, raw = e.request("POST", "/v1/hooks/demo", body=body,
                               headers=hook_headers())
    assert status == 202
    event_id = json.loads(raw)["id"]
    assert e.stop() == 0
    assert stored_events(tmp_path) == {event_id: body}


# ---- 7. header timeout -----------------------------------------------------

def test_partial_request_line_gets_408(engine):
    e = engine(config(server="header_timeout: 1s"))
    c = Client(e.port)
    c.send(b"GET /heal")
    r = c.response()
    msg = assert_error(r, 408, "header_timeout")
    assert "server.header_timeout" in msg
    assert r.headers["connection"] == "close"
    assert c.closed()
    assert e.stop() == 0


def test_header_deadline_runs_from_the_first_byte(engine):
    e = engine(config(server="header_timeout: 1s"))
    c = Client(e.port)
    # 40 bytes at one per 300 ms take 12 s: far beyond the 1 s deadline, and
    # beyond the 10 s receive timeout if every byte restarted the clock.
    trickle = b"GET /healthz HTTP/1.1\r\nX-Slow: " + b"z" * 40
    answered = threading.Event()

    def sender():
        for i in range(len(trickle)):
            if answered.is_set():
                return
            try:
                c.sock.send(trickle[i:i + 1])
            except OSError:
                return
            time.sleep(0.3)

    t = threading.Thread(target=sender)
    t.start()
    try:
        r = c.response()
    finally:
        answered.set()
        t.join()
    assert_error(r, 408, "header_timeout")
    assert c.closed()
    assert e.stop() == 0


# ---- 8. idle timeout -------------------------------------------------------

def test_idle_keep_alive_connection_is_closed(engine):
    e = engine(config(server="idle_timeout: 1s"))
    c = Client(e.port)
    c.send(request_bytes("GET", "/healthz"))
    assert c.response().status == 200
    assert c.closed(timeout=10)
    # A connection that never sends a byte is idle too.
    silent = Client(e.port)
    assert silent.closed(timeout=10)
    assert e.stop() == 0


# ---- 9. max_connections ----------------------------------------------------

def test_max_connections(engine):
    e = engine(config(server="max_connections: 3"))
    held = []
    for _ in range(3):
        c = Client(e.port)
        c.send(request_bytes("GET", "/healthz"))
        assert c.response().status == 200
        held.append(c)
    extra = Client(e.port)
    r = extra.response()  # answered without asking
    msg = assert_error(r, 503, "too_many_connections")
    assert "server.max_connections" in msg
    assert r.headers["connection"] == "close"
    assert extra.closed()

    held.pop().close()
    deadline = time.monotonic() + 10
    while True:
        c = Client(e.port)
        try:
            c.send(request_bytes("GET", "/healthz"))
        except OSError:
            pass  # refused and closed before the request went out
        r = c.response()
        if r is not None and r.status == 200:
            break
        if r is not None:
            assert_error(r, 503, "too_many_connections")
        c.close()
        assert time.monotonic() < deadline, "no slot came free after a close"
        time.sleep(0.1)
    assert c.still_open()
    for h in held:  # the survivors still work
        h.send(request_bytes("GET", "/healthz"))
        assert h.response().status == 200
    for h in held + [c]:
        h.close()
    assert e.stop() == 0


# ---- 10. malformed input ---------------------------------------------------

MALFORMED = {
    "garbage": (b"\x00\x01\x02garbage\r\n\r\n", "invalid HTTP method"),
    "bad-request-line": (b"GET /healthz FOO/1.1\r\n\r\n",
                         "invalid constant string"),
    "bad-header-name": (b"GET /healthz HTTP/1.1\r\nX-Bad{Name}: 1\r\n\r\n",
                        "invalid character in header"),
    "bad-chunk-size": (CHUNKED_HEAD + b"zz\r\n{}\r\n0\r\n\r\n",
                       "invalid character in chunk size header"),
    "content-length-and-chunked": (
        CHUNKED_HEAD[:-2] + b"Content-Length: 2\r\n\r\n2\r\n{}\r\n0\r\n\r\n",
        "unexpected content-length header"),
    "two-content-lengths": (
        b"POST /v1/hooks/demo HTTP/1.1\r\nContent-Type: application/json\r\n"
        b"Content-Length: 2\r\nContent-Length: 3\r\n\r\n{} ",
        "unexpected content-length header"),
}


@pytest.mark.parametrize("name", list(MALFORMED))
def test_malformed_request_is_400_and_closes(engine, tmp_path, name):
    data, why = MALFORMED[name]
    e = engine(config())
    c = Client(e.port)
    # A good request first: it is answered, then the bad one, in order.
    c.send(request_bytes("GET", "/healthz") + data)
    assert c.response().status == 200
    r = c.response()
    msg = assert_error(r, 400, "bad_request")
    assert msg == f"malformed HTTP request: {why}"
    assert r.headers["connection"] == "close"
    assert c.closed()
    assert e.stop() == 0
    assert stored_events(tmp_path) == {}


def test_whitespace_before_header_colon_is_400(engine):
    e = engine(config())
    c = Client(e.port)
    c.send(b"POST /v1/hooks/demo HTTP/1.1\r\nHost: x\r\n"
           b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
           b"Content-Type: application/json\r\nContent-Length : 2\r\n\r\n{}")
    assert_error(c.response(), 400, "bad_request")
    assert c.closed()


def parse_all(data):
    """Split what a server sent into well-formed responses; fails on junk."""
    out = []
    pos = 0
    while pos < len(data):
        end = data.find(b"\r\n\r\n", pos)
        assert end >= 0, f"truncated: {data[pos:]!r}"
        lines = data[pos:end].decode("latin-1").split("\r\n")
        m = re.fullmatch(r"HTTP/1\.1 (\d{3}) [A-Za-z -]+", lines[0])
        assert m, lines
        lengths = [l.split(":", 1)[1].strip() for l in lines[1:]
                   if l.lower().startswith("content-length:")]
        assert len(lengths) == 1 and lengths[0].isdigit(), lines
        body = data[end + 4:end + 4 + int(lengths[0])]
        assert len(body) == int(lengths[0]), f"short body: {data[pos:]!r}"
        out.append((int(m.group(1)), body))
        pos = end + 4 + len(body)
    return out


def test_fuzzed_input_never_breaks_the_server(engine):
    e = engine(config())
    rng = random.Random(1)
    seed = hook_bytes(b'{"fuzz":true}')
    cases = []
    for i in range(20):
        if i % 2:
            cases.append(bytes(rng.randrange(256)
                               for _ in range(rng.randrange(1, 300))))
        else:
            b = bytearray(seed)
            for _ in range(rng.randrange(1, 6)):
                op = rng.randrange(3)
                at = rng.randrange(len(b))
                if op == 0:
                    b[at] = rng.randrange(256)
                elif op == 1:
                    b.insert(at, rng.randrange(256))
                else:
                    del b[at]
            cases.append(bytes(b))
    answered = 0
    for data in cases:
        c = Client(e.port)
        c.send(data)
        c.sock.shutdown(socket.SHUT_WR)
        try:
            while c._fill():
                pass
        except socket.timeout:
            pytest.fail(f"no answer and no close for {data!r}")
        got = c.buf
        for status, body in parse_all(got):
            answered += 1
            if status >= 400:  # JSON validity: see the test after this one
                assert re.match(rb'\{"error":\{"code":"[a-z_]+","message":"',
                                body), (data, body)
        c.close()
    assert answered >= 10  # most inputs are answered, not just dropped
    assert e.request("GET", "/healthz")[0] == 200
    assert e.stop() == 0


def test_error_bodies_stay_valid_json_for_any_request_bytes(engine):
    e = engine(config())
    c = Client(e.port)
    long_utf8 = "/" + "a" * 198 + "\u00e9"  # valid UTF-8, cut at byte 200
    c.send(b"GET /n\xffpe HTTP/1.1\r\n\r\n" +
           b"GET " + long_utf8.encode() + b" HTTP/1.1\r\n\r\n" +
           hook_bytes(b"{}", ctype="application/j\xe9son".encode("latin-1")
                      .decode("utf-8", "surrogateescape")))
    for status, code in ((404, "not_found"), (404, "not_found"),
                         (415, "unsupported_media_type")):
        r = c.response()
        assert r.status == status
        doc = json.loads(r.body.decode("utf-8"))  # strict UTF-8
        assert doc["error"]["code"] == code


def test_upgrade_request_gets_exactly_one_response(engine):
    e = engine(config())
    c = Client(e.port)
    c.send(request_bytes("GET", "/healthz", headers=[
        ("Connection", "Upgrade"), ("Upgrade", "websocket")]))
    r = c.response()
    assert r.status in (200, 501), r  # served as if plain, or refused
    c.closed(timeout=1)  # fails if anything more arrives


def test_head_content_length_matches_get(engine):
    e = engine(config())
    c = Client(e.port)
    c.send(request_bytes("GET", "/healthz") + request_bytes("HEAD", "/healthz"))
    get = c.response()
    head = c.response(head=True)
    assert head.status == 200
    assert head.headers["content-length"] == get.headers["content-length"]


# ---- 11. intake answers ----------------------------------------------------

def test_hook_accepted_and_duplicate(engine, tmp_path):
    e = engine(config())
    status, headers, raw = e.request("POST", "/v1/hooks/demo", body=b'{"a":1}',
                                     headers=hook_headers(**{"X-Delivery": "d-1"}))
    assert status == 202
    doc = json.loads(raw)
    assert doc["status"] == "queued" and ULID.match(doc["id"])
    assert re.fullmatch(r"[0-9a-f]{32}", headers["X-Request-ID"])
    status, _, raw = e.request("POST", "/v1/hooks/demo", body=b'{"a":2}',
                               headers=hook_headers(**{"X-Delivery": "d-1"}))
    assert status == 200
    assert json.loads(raw) == {"id": doc["id"], "status": "duplicate"}
    assert e.stop() == 0
    assert stored_events(tmp_path) == {doc["id"]: b'{"a":1}'}


def test_concurrent_duplicates_queue_one_event(engine, tmp_path):
    e = engine(config())
    n = 20
    barrier = threading.Barrier(n)
    results = [None] * n

    def post(i):
        c = Client(e.port)
        barrier.wait()
        c.send(hook_bytes(b'{"i":%d}' % i, headers=[("X-Delivery", "same")]))
        r = c.response()
        results[i] = (r.status, r.json())
        c.close()

    threads = [threading.Thread(target=post, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    statuses = sorted(s for s, _ in results)
    assert statuses == [200] * (n - 1) + [202], statuses
    ids = {doc["id"] for _, doc in results}
    assert len(ids) == 1
    assert e.stop() == 0
    rows = stored_events(tmp_path)
    assert list(rows) == list(ids)


def test_wrong_or_missing_token_is_401(engine):
    e = engine(config())
    c = Client(e.port)
    c.send(hook_bytes(b"{}", token="not-the-token"))
    r = c.response()
    msg = assert_error(r, 401, "verification_failed")
    assert msg.startswith("bearer: ") and "does not match" in msg
    assert TOKEN not in r.raw.decode("latin-1")
    assert "not-the-token" not in msg
    assert r.headers["x-request-id"]
    c.send(hook_bytes(b"{}", token=None))
    r = c.response()
    msg = assert_error(r, 401, "verification_failed")
    assert msg == "bearer: Authorization header is missing"
    assert TOKEN not in r.raw.decode("latin-1")
    assert c.still_open()  # an application error does not end the connection
    c.close()


def test_unknown_source_and_wrong_method(engine):
    e = engine(config())
    status, _, raw = e.request("POST", "/v1/hooks/nosuch", body=b"{}",
                               headers=hook_headers())
    assert status == 404
    err = json.loads(raw)["error"]
    assert err["code"] == "unknown_source" and "'nosuch'" in err["message"]
    status, headers, raw = e.request("GET", "/v1/hooks/demo")
    assert status == 405
    assert headers["Allow"] == "POST"
    assert json.loads(raw)["error"]["code"] == "method_not_allowed"


@pytest.mark.parametrize("ctype,expect", [
    (None, "Content-Type is missing"),
    ("text/plain", "Content-Type text/plain is not accepted here"),
    ("application/x-www-form-urlencoded",
     "Content-Type application/x-www-form-urlencoded is not accepted here"),
])
def test_unsupported_media_type_is_415(engine, ctype, expect):
    e = engine(config())
    c = Client(e.port)
    c.send(hook_bytes(b'{"a":1}', ctype=ctype))
    msg = assert_error(c.response(), 415, "unsupported_media_type")
    assert msg.startswith(expect) and "application/json" in msg


@pytest.mark.parametrize("ctype", ["application/json; charset=utf-8",
                                   "application/cloudevents+json",
                                   "Application/JSON"])
def test_json_media_types_are_accepted(engine, ctype):
    e = engine(config())
    c = Client(e.port)
    c.send(hook_bytes(b'{"a":1}', ctype=ctype))
    assert_queued(c.response())


def test_empty_and_invalid_json_bodies_are_400(engine, tmp_path):
    e = engine(config())
    c = Client(e.port)
    c.send(hook_bytes(b""))
    assert_error(c.response(), 400, "empty_body")
    c.send(hook_bytes(b'{"a":'))
    msg = assert_error(c.response(), 400, "invalid_json")
    assert msg.startswith("the body is not valid JSON: ")
    assert msg.endswith("at byte offset 5")
    c.send(hook_bytes(b'[1,2] x'))
    assert_error(c.response(), 400, "invalid_json")
    assert c.still_open()
    c.close()
    assert e.stop() == 0
    assert stored_events(tmp_path) == {}


def test_request_id_echoed_or_taken_from_traceparent(engine):
    e = engine(config())
    status, headers, _ = e.request("POST", "/v1/hooks/demo", body=b"{}",
                                   headers=hook_headers(**{"X-Request-ID": "req-42.a"}))
    assert status == 202 and headers["X-Request-ID"] == "req-42.a"
    tp = "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01"
    status, headers, _ = e.request("POST", "/v1/hooks/demo", body=b"{}",
                                   headers=hook_headers(traceparent=tp))
    assert status == 202
    assert headers["X-Request-ID"] == "4bf92f3577b34da6a3ce929d0e0e4736"
    # Error answers carry it too.
    status, headers, _ = e.request("POST", "/v1/hooks/demo", body=b"",
                                   headers=hook_headers(**{"X-Request-ID": "e-1"}))
    assert status == 400 and headers["X-Request-ID"] == "e-1"


# ---- 12. rate limit --------------------------------------------------------

def test_rate_limit_is_429_with_retry_after(engine):
    src = SOURCE_DEMO + "    rate: { per_second: 1, burst: 2 }\n"
    e = engine(config(sources=src))
    c = Client(e.port)
    # One write, so all three arrive within the same instant.
    c.send(b"".join(hook_bytes(b'{"n":%d}' % i) for i in range(3)))
    assert_queued(c.response())
    assert_queued(c.response())
    r = c.response()
    msg = assert_error(r, 429, "rate_limited")
    assert "'demo'" in msg and "rate limit" in msg
    assert re.fullmatch(r"[1-9]\d*", r.headers["retry-after"]), r
    assert r.headers["x-request-id"]
    assert c.still_open()
    c.close()


# ---- 13. backpressure ------------------------------------------------------

# Deliveries to a port nobody listens on, tried again only in an hour: what
# is accepted stays queued.
STUCK_CONNECTOR = """\
outbound: { allow_networks: [127.0.0.0/8] }
connectors:
  stuck:
    plugin: webhook
    url: http://127.0.0.1:9/nowhere
    policy: later
policies:
  later:
    retry: { schedule: [0s, 1h] }
routes:
  - to: [stuck]
"""


def test_queue_full_is_503_with_retry_after(engine, tmp_path):
    e = engine(config(storage="max_queued: 3") + STUCK_CONNECTOR)
    c = Client(e.port)
    ids = []
    for i in range(3):
        c.send(hook_bytes(b'{"n":%d}' % i))
        ids.append(assert_queued(c.response()))
    c.send(hook_bytes(b'{"n":3}'))
    r = c.response()
    msg = assert_error(r, 503, "queue_full")
    assert "storage.max_queued" in msg
    assert re.fullmatch(r"[1-9]\d*", r.headers["retry-after"]), r
    assert e.stop() == 0
    assert sorted(stored_events(tmp_path)) == ids


# ---- 14. store full --------------------------------------------------------

def test_store_full_is_503_and_nothing_accepted_is_lost(engine, tmp_path):
    e = engine(config(server="max_body: 512KiB",
                      storage="max_size: 1MiB"))
    accepted = {}
    full = None
    for i in range(12):
        body = json.dumps({"n": i, "pad": chr(97 + i) * 400_000}).encode()
        c = Client(e.port)
        c.send(hook_bytes(body))
        r = c.response()
        c.close()
        if r.status == 202:
            accepted[assert_queued(r)] = body
            continue
        full = r
        break
    assert full is not None, "the store never filled up"
    assert accepted, "not even one large event fit"
    msg = assert_error(full, 503, "store_unavailable")
    assert "disk" in msg and "full" in msg and "retry later" in msg
    assert re.fullmatch(r"[1-9]\d*", full.headers["retry-after"])
    # The engine keeps serving; a small event may or may not still fit.
    assert e.request("GET", "/healthz")[0] == 200
    small = b'{"small":true}'
    status, _, raw = e.request("POST", "/v1/hooks/demo", body=small,
                               headers=hook_headers())
    assert status in (202, 503), (status, raw)
    if status == 202:
        accepted[json.loads(raw)["id"]] = small
    else:
        assert json.loads(raw)["error"]["code"] == "store_unavailable"
    assert e.stop() == 0
    rows = stored_events(tmp_path)
    assert set(rows) == set(accepted)
    for event_id, body in accepted.items():
        assert rows[event_id] == body, event_id


# ---- 15. shutdown ----------------------------------------------------------

def test_sigterm_with_slow_clients_exits_zero(engine):
    e = engine(config())
    mid_body = Client(e.port)
    mid_body.send(hook_bytes(b'{"half":"' + b"x" * 100 + b'"}')[:-50])
    mid_head = Client(e.port)
    mid_head.send(b"POST /v1/hooks/demo HTTP/1.1\r\nHost: x\r\nAuthor")
    idle = Client(e.port)
    idle.send(request_bytes("GET", "/healthz"))
    assert idle.response().status == 200
    time.sleep(0.1)
    assert e.stop(signal.SIGTERM) == 0
    for c in (mid_body, mid_head, idle):
        assert c.closed()
    log = e.log()
    assert "stopped" in log
    # Nobody was waited for: half-sent requests do not hold the shutdown.
    assert "grace period over" not in log


def test_half_closed_client_still_gets_its_answer(engine, tmp_path):
    """A sender that shuts down its side after the request (as some HTTP
    clients do) must still learn the event's id: it is already stored."""
    e = engine(config())
    c = Client(e.port)
    c.send(hook_bytes(b'{"half":"closed"}'))
    c.sock.shutdown(socket.SHUT_WR)
    r = c.response()
    assert_queued(r)
    event_id = r.json()["id"]
    assert not c.still_open()
    c.close()
    assert e.stop() == 0
    assert stored_events(tmp_path) == {event_id: b'{"half":"closed"}'}


def test_rate_limit_spends_nothing_on_bad_tokens(engine):
    """Requests that fail verification do not use up the source's rate, so
    a stranger cannot starve the real sender."""
    sources = SOURCE_DEMO.replace("verify:", "rate: { per_second: 0.01, burst: 2 }\n    verify:")
    e = engine(config(sources=sources))
    c = Client(e.port)
    for _ in range(5):
        c.send(hook_bytes(b"{}", token="wrong"))
        assert_error(c.response(), 401, "verification_failed")
    for _ in range(2):
        c.send(hook_bytes(b"{}"))
        assert_queued(c.response())
    c.send(hook_bytes(b"{}"))
    assert_error(c.response(), 429, "rate_limited")
    c.close()
