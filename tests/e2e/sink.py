"""Test helpers for outbound delivery: a scriptable HTTP/1.1 receiver, an
independent signature checker, and the real adnanh/webhook receiver.

Standard library only; runs under /usr/bin/python3 (Python 3.11).

Sink -- a real HTTP/1.1 server on 127.0.0.1 (ephemeral port), one thread per
connection, keep-alive, chunked request bodies and ``Expect: 100-continue``.
Every request is recorded; answers are controlled for fault injection::

    with Sink() as s:
        s.script([Answer(503, headers={"Retry-After": "2"}), Reset(), Hang()])
        s.respond_on("/slow", Slow(200, b"{}", chunk_delay=0.2))
        ...                                  # point hookline at s.url()
        reqs = s.wait_for(4)                 # AssertionError on timeout
        assert reqs[-1].headers["content-type"] == "application/json"

Which behaviour answers a request, first match wins:

1. the next one-shot behaviour queued for its exact path (``script_on``),
2. the next one-shot behaviour queued for any path (``script``),
3. ``s.handler(request)`` if set and it returns something other than None,
4. the default for its exact path (``respond_on``),
5. the sink default (``respond``; initially 200 ``{"ok":true}``).

Behaviours: ``Answer``, ``Hang``, ``Reset``, ``Close``, ``Slow``. Wherever a
behaviour is accepted, these shorthands are too: an int (``503`` is
``Answer(503)``), a name (``"hang"``, ``"reset"``, ``"close"``), or a dict
(``{"kind": "slow", "status": 200, "body": "x", "chunk_delay": 0.1}``; without
``kind`` the dict is ``Answer`` keyword arguments, e.g.
``{"status": 429, "headers": {"Retry-After": "2"}}``).

verify_standard_webhooks / sign_standard_webhooks / github_signature --
signatures computed here independently of hookline's C code.

AdnanhWebhook -- runs /usr/bin/webhook (Debian package ``webhook``, 2.8) with
one HMAC-checked hook; see its docstring for exactly how it answers.
"""
import base64
import collections.abc
import email.utils
import hashlib
import hmac
import http
import json
import os
import re
import shlex
import socket
import struct
import subprocess
import tempfile
import threading
import time
import traceback
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "Sink", "Request", "Headers", "Answer", "Hang", "Reset", "Close", "Slow",
    "verify_standard_webhooks", "sign_standard_webhooks", "github_signature",
    "AdnanhWebhook", "WEBHOOK_BIN", "webhook_available",
]

MAX_LINE = 65536          # longest request line / header line / chunk line
MAX_HEADERS = 256         # most header (or trailer) lines in one request
MAX_BODY = 64 * 1024 * 1024


# ---- headers ---------------------------------------------------------------

class Headers(collections.abc.Mapping):
    """Case-insensitive, order-preserving, multi-valued header mapping.

    ``h["Content-Type"]`` / ``h.get("content-type")`` give the FIRST value of
    that name; ``h.get_all(name)`` gives every value in arrival order (empty
    list when absent); ``h.pairs()`` gives all (name, value) pairs as sent
    (original spelling). Iteration yields each distinct name once, spelled as
    it first appeared. Values are str (decoded as latin-1, untrimmed of
    nothing but the surrounding optional whitespace).
    """

    def __init__(self, pairs=()):
        if isinstance(pairs, collections.abc.Mapping):
            pairs = pairs.items()
        self._pairs = [(str(k), str(v)) for k, v in pairs]

    def __getitem__(self, name):
        lname = name.lower()
        for k, v in self._pairs:
            if k.lower() == lname:
                return v
        raise KeyError(name)

    def get_all(self, name):
        """Every value of header `name` (case-insensitive), in order."""
        lname = name.lower()
        return [v for k, v in self._pairs if k.lower() == lname]

    def pairs(self):
        """All (name, value) pairs, duplicates included, as received."""
        return list(self._pairs)

    def __iter__(self):
        seen = set()
        for k, _ in self._pairs:
            if k.lower() not in seen:
                seen.add(k.lower())
                yield k

    def __len__(self):
        return len({k.lower() for k, _ in self._pairs})

    def __repr__(self):
        return f"Headers({self._pairs!r})"


def _header_pairs(headers):
    """dict / Headers / iterable of pairs / None -> list of (str, str)."""
    if headers is None:
        return []
    if isinstance(headers, Headers):
        return headers.pairs()
    if isinstance(headers, collections.abc.Mapping):
        headers = headers.items()
    return [(str(k), str(v)) for k, v in headers]


def _header_lookup(headers, name):
    """First value of `name` in any header container, case-insensitively."""
    for k, v in _header_pairs(headers):
        if k.lower() == name.lower():
            return v
    return None


# ---- behaviours ------------------------------------------------------------

def _body_bytes(body, headers):
    """Answer body -> (bytes, header pairs); dict/list become JSON (with a
    Content-Type unless one is given), str becomes UTF-8."""
    pairs = _header_pairs(headers)
    if isinstance(body, (dict, list)):
        body = json.dumps(body, separators=(",", ":")).encode()
        if not any(k.lower() == "content-type" for k, _ in pairs):
            pairs.append(("Content-Type", "application/json"))
    elif isinstance(body, str):
        body = body.encode()
    elif body is None:
        body = b""
    return bytes(body), pairs


@dataclass
class Answer:
    """Answer with `status`, `body` and `headers` after `delay` seconds.

    body: bytes, str (UTF-8) or dict/list (JSON; Content-Type
    application/json added unless given). headers: dict or list of pairs
    (pairs allow duplicates). Content-Length, Date and Connection are added
    unless given, so a wrong Content-Length can be injected on purpose.
    close=True closes the connection after the answer (and says so with
    ``Connection: close``). Example: ``Answer(429, headers={"Retry-After": "2"})``.
    """
    status: int = 200
    body: object = b""
    headers: object = None
    delay: float = 0.0
    close: bool = False


@dataclass
class Slow:
    """Answer slowly: status line and headers at once (with the full
    Content-Length), then the body `chunk_size` bytes at a time, sleeping
    `chunk_delay` seconds before each piece."""
    status: int = 200
    body: object = b""
    chunk_delay: float = 0.1
    headers: object = None
    chunk_size: int = 1
    close: bool = False


@dataclass
class Hang:
    """Read the whole request, never answer; the socket stays open until the
    client gives up or the sink closes."""


@dataclass
class Reset:
    """Read the whole request, then close with SO_LINGER 0: the client sees a
    TCP RST (ECONNRESET) instead of an answer."""


@dataclass
class Close:
    """Read the whole request, then close cleanly (FIN) without answering:
    the client sees end-of-file where the status line should be."""


_KINDS = {"answer": Answer, "slow": Slow, "hang": Hang, "reset": Reset,
          "close": Close}


def _coerce(behaviour):
    """Normalise a behaviour or one of its shorthands (int, name, dict)."""
    if isinstance(behaviour, (Answer, Slow, Hang, Reset, Close)):
        return behaviour
    if isinstance(behaviour, type) and behaviour in _KINDS.values():
        return behaviour()
    if isinstance(behaviour, bool):
        raise TypeError(f"not a behaviour: {behaviour!r}")
    if isinstance(behaviour, int):
        return Answer(behaviour)
    if isinstance(behaviour, str) and behaviour.lower() in _KINDS:
        return _KINDS[behaviour.lower()]()
    if isinstance(behaviour, collections.abc.Mapping):
        d = dict(behaviour)
        kind = d.pop("kind", None) or d.pop("type", None) or "answer"
        if kind.lower() not in _KINDS:
            raise ValueError(f"unknown behaviour kind {kind!r}")
        return _KINDS[kind.lower()](**d)
    raise TypeError(f"not a behaviour: {behaviour!r}")


# ---- recorded requests -----------------------------------------------------

@dataclass(eq=False)
class Request:
    """One request as the sink received it.

    method, target (as on the request line), path (target without the query,
    still percent-encoded), query (raw query string, '' if none; parsed:
    ``query_params``), http_version ('HTTP/1.1'), headers (Headers), body
    (bytes, de-chunked), chunked (bool: it came with Transfer-Encoding:
    chunked), trailers (Headers, from a chunked body), time
    (time.monotonic() when its request line arrived), answer_status (the
    status the sink chose; None for Hang/Reset/Close), behaviour (what was
    applied), index (0-based order across the sink), conn_id (1-based number
    of the TCP connection it came on), conn_seq (1-based position of the
    request on that connection: 2+ means a reused keep-alive connection).
    """
    method: str
    target: str
    path: str
    query: str
    http_version: str
    headers: Headers
    body: bytes = b""
    chunked: bool = False
    trailers: Headers = field(default_factory=Headers)
    time: float = 0.0
    answer_status: object = None
    behaviour: object = None
    index: int = -1
    conn_id: int = 0
    conn_seq: int = 0

    def json(self):
        """The body parsed as JSON."""
        return json.loads(self.body)

    @property
    def text(self):
        """The body decoded as UTF-8."""
        return self.body.decode("utf-8")

    @property
    def query_params(self):
        """The query as {name: [values]} (blank values kept)."""
        return urllib.parse.parse_qs(self.query, keep_blank_values=True)

    def __repr__(self):
        q = f"?{self.query}" if self.query else ""
        return (f"<Request #{self.index} {self.method} {self.path}{q} "
                f"conn={self.conn_id}/{self.conn_seq} body={len(self.body)}B "
                f"-> {self.answer_status if self.answer_status is not None else type(self.behaviour).__name__}>")


class _BadRequest(Exception):
    pass


class _Gone(Exception):
    """The peer went away (or the sink is closing) mid-request."""


# ---- the sink --------------------------------------------------------------

class Sink:
    """A recording, scriptable HTTP/1.1 server on 127.0.0.1 (see module doc).

    Starts listening in the constructor; ``close()`` (or leaving the
    ``with`` block) stops it, closing every connection, hung ones included.

    Attributes: port, connections (TCP connections accepted so far),
    open_connections (currently open), requests (a copy of the recorded
    list), errors (protocol errors and handler exceptions, as strings),
    handler (None or fn(request) -> behaviour or None).
    """

    DEFAULT = Answer(200, b'{"ok":true}', {"Content-Type": "application/json"})

    def __init__(self, host="127.0.0.1", port=0):
        self.host = host
        self.handler = None
        self.errors = []
        self._lock = threading.Lock()
        self._cond = threading.Condition(self._lock)
        self._stop = threading.Event()
        self._requests = []
        self._default = self.DEFAULT
        self._path_default = {}
        self._script = collections.deque()
        self._path_script = {}
        self._socks = set()
        self._threads = []
        self._accepted = 0
        self._open = 0
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.bind((host, port))
        self._listener.listen(128)
        self._listener.settimeout(0.05)
        self.port = self._listener.getsockname()[1]
        self._acceptor = threading.Thread(target=self._accept_loop,
                                          name=f"sink-{self.port}", daemon=True)
        self._acceptor.start()

    # -- context manager / lifecycle --

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def close(self, timeout=2.0):
        """Stop accepting, close every connection (waking hung ones), and
        wait up to `timeout` seconds for the threads. Idempotent."""
        if self._stop.is_set():
            return
        self._stop.set()
        self._acceptor.join(timeout)
        self._listener.close()
        with self._lock:
            socks = list(self._socks)
        for s in socks:
            try:
                s.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
        deadline = time.monotonic() + timeout
        for t in list(self._threads):
            t.join(max(0.0, deadline - time.monotonic()))

    @property
    def closed(self):
        return self._stop.is_set()

    # -- addresses and records --

    def url(self, path="/hook"):
        """``http://127.0.0.1:PORT`` + path (a leading '/' is added)."""
        if path and not path.startswith("/"):
            path = "/" + path
        return f"http://{self.host}:{self.port}{path}"

    @property
    def connections(self):
        """TCP connections accepted so far."""
        with self._lock:
            return self._accepted

    @property
    def open_connections(self):
        """TCP connections currently open on the sink's side."""
        with self._lock:
            return self._open

    @property
    def requests(self):
        """A copy of the recorded requests, in arrival order."""
        with self._lock:
            return list(self._requests)

    def clear(self):
        """Forget the recorded requests and errors (behaviours stay)."""
        with self._lock:
            self._requests.clear()
            self.errors.clear()

    def wait_for(self, n, timeout=10, path=None):
        """Wait until at least `n` requests (on exactly `path`, if given) are
        recorded; return all such requests. AssertionError on timeout, naming
        what did arrive."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                got = [r for r in self._requests
                       if path is None or r.path == path]
                if len(got) >= n:
                    return got
                left = deadline - time.monotonic()
                if left <= 0:
                    where = f" on {path}" if path else ""
                    raise AssertionError(
                        f"sink {self.url('')}: expected at least {n} "
                        f"request(s){where} within {timeout}s, got {len(got)}; "
                        f"all requests: {self._requests!r}; "
                        f"connections: {self._accepted}; errors: {self.errors!r}")
                self._cond.wait(left)

    # -- behaviour control --

    @staticmethod
    def _make(status, body, headers, delay):
        if isinstance(status, int) and not isinstance(status, bool):
            return Answer(status, body, headers, delay)
        return _coerce(status)

    def respond(self, status=200, body=b"", headers=None, delay=0.0):
        """Set the default answer. `status` may also be any behaviour
        (``s.respond(Hang())``, ``s.respond("reset")``)."""
        b = self._make(status, body, headers, delay)
        with self._lock:
            self._default = b

    def respond_on(self, path, status=200, body=b"", headers=None, delay=0.0):
        """Set the default answer for requests on exactly `path`."""
        b = self._make(status, body, headers, delay)
        with self._lock:
            self._path_default[path] = b

    def script(self, behaviours):
        """Queue one-shot behaviours, consumed in order by the next requests
        (on any path); appends to what is still queued."""
        bs = [_coerce(b) for b in behaviours]
        with self._lock:
            self._script.extend(bs)

    def script_on(self, path, behaviours):
        """Queue one-shot behaviours for requests on exactly `path`."""
        bs = [_coerce(b) for b in behaviours]
        with self._lock:
            self._path_script.setdefault(path, collections.deque()).extend(bs)

    def pending(self, path=None):
        """How many scripted behaviours (for `path`, or the global queue) are
        not yet consumed."""
        with self._lock:
            if path is None:
                return len(self._script)
            return len(self._path_script.get(path, ()))

    def _choose(self, req):
        with self._lock:
            q = self._path_script.get(req.path)
            if q:
                return q.popleft()
            if self._script:
                return self._script.popleft()
            handler = self.handler
        if handler is not None:
            try:
                got = handler(req)
            except Exception:
                tb = traceback.format_exc()
                with self._lock:
                    self.errors.append(f"handler raised on {req!r}:\n{tb}")
                return Answer(500, tb, {"Content-Type": "text/plain"})
            if got is not None:
                return _coerce(got)
        with self._lock:
            return self._path_default.get(req.path, self._default)

    # -- serving --

    def _accept_loop(self):
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except socket.timeout:
                continue
            except OSError:
                break
            conn.settimeout(None)
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            with self._lock:
                if self._stop.is_set():
                    conn.close()
                    break
                self._accepted += 1
                self._open += 1
                conn_id = self._accepted
                self._socks.add(conn)
            t = threading.Thread(target=self._serve, args=(conn, conn_id),
                                 name=f"sink-{self.port}-c{conn_id}",
                                 daemon=True)
            self._threads.append(t)
            t.start()

    def _serve(self, sock, conn_id):
        rfile = sock.makefile("rb")
        reset = False
        try:
            seq = 0
            while not self._stop.is_set():
                try:
                    req, keep = self._read_request(sock, rfile)
                except _BadRequest as e:
                    with self._lock:
                        self.errors.append(f"conn {conn_id}: bad request: {e}")
                    self._send(sock, self._response(400, str(e).encode(),
                                                    [], False, "GET"))
                    return
                except (_Gone, OSError, ValueError):
                    return
                if req is None:
                    return
                seq += 1
                req.conn_id, req.conn_seq = conn_id, seq
                b = self._choose(req)
                req.behaviour = b
                if isinstance(b, (Answer, Slow)):
                    req.answer_status = b.status
                with self._cond:
                    req.index = len(self._requests)
                    self._requests.append(req)
                    self._cond.notify_all()

                if isinstance(b, Hang):
                    self._stop.wait()
                    return
                if isinstance(b, Reset):
                    reset = True
                    return
                if isinstance(b, Close):
                    try:
                        sock.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass
                    return
                if not self._answer(sock, req, b, keep):
                    return
        finally:
            try:
                rfile.close()
            except OSError:
                pass
            if reset:
                try:
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                    struct.pack("ii", 1, 0))
                except OSError:
                    pass
            sock.close()
            with self._lock:
                self._socks.discard(sock)
                self._open -= 1

    def _answer(self, sock, req, b, keep):
        """Write an Answer/Slow; True if the connection stays open."""
        body, pairs = _body_bytes(b.body, b.headers)
        conn_vals = ",".join(v for k, v in pairs if k.lower() == "connection")
        keep = keep and not b.close and "close" not in conn_vals.lower()
        if isinstance(b, Answer) and b.delay > 0:
            if self._stop.wait(b.delay):
                return False
        if req.http_version == "HTTP/1.0" and keep:
            pairs.append(("Connection", "keep-alive"))
        if isinstance(b, Answer):
            return self._send(sock, self._response(
                b.status, body, pairs, keep, req.method)) and keep
        head = self._response(b.status, body, pairs, keep, req.method,
                              head_only=True)
        if not self._send(sock, head):
            return False
        if req.method != "HEAD":
            step = max(1, int(b.chunk_size))
            for i in range(0, len(body), step):
                if self._stop.wait(b.chunk_delay):
                    return False
                if not self._send(sock, body[i:i + step]):
                    return False
        return keep

    @staticmethod
    def _send(sock, data):
        try:
            sock.sendall(data)
            return True
        except OSError:
            return False

    @staticmethod
    def _response(status, body, pairs, keep, method, head_only=False):
        try:
            reason = http.HTTPStatus(status).phrase
        except ValueError:
            reason = "Unknown"
        names = {k.lower() for k, _ in pairs}
        out = list(pairs)
        if "date" not in names:
            out.append(("Date", email.utils.formatdate(usegmt=True)))
        no_body = status in (204, 304) or 100 <= status < 200
        if ("content-length" not in names and "transfer-encoding" not in names
                and not no_body):
            out.append(("Content-Length", str(len(body))))
        if "connection" not in names and not keep:
            out.append(("Connection", "close"))
        head = f"HTTP/1.1 {status} {reason}\r\n" + "".join(
            f"{k}: {v}\r\n" for k, v in out) + "\r\n"
        head = head.encode("latin-1")
        if head_only or method == "HEAD" or no_body:
            return head
        return head + body

    # -- parsing --

    @staticmethod
    def _readline(rfile):
        line = rfile.readline(MAX_LINE + 1)
        if len(line) > MAX_LINE:
            raise _BadRequest("line too long")
        return line

    def _read_fields(self, rfile):
        pairs = []
        while True:
            line = self._readline(rfile)
            if not line:
                raise _Gone()
            if line in (b"\r\n", b"\n"):
                return pairs
            if len(pairs) >= MAX_HEADERS:
                raise _BadRequest("too many header fields")
            text = line.decode("latin-1").rstrip("\r\n")
            if text[:1] in (" ", "\t"):
                raise _BadRequest("obsolete line folding")
            name, sep, value = text.partition(":")
            if not sep or not name or name != name.strip():
                raise _BadRequest(f"malformed header line {text!r}")
            pairs.append((name, value.strip(" \t")))

    def _read_request(self, sock, rfile):
        """-> (Request, keep_alive) or (None, False) at a clean EOF."""
        line = self._readline(rfile)
        while line in (b"\r\n", b"\n"):
            line = self._readline(rfile)
        if not line:
            return None, False
        arrival = time.monotonic()
        parts = line.decode("latin-1").rstrip("\r\n").split(" ")
        if len(parts) != 3 or not parts[2].startswith("HTTP/1."):
            raise _BadRequest(f"malformed request line {line[:200]!r}")
        method, target, version = parts
        if version not in ("HTTP/1.0", "HTTP/1.1"):
            raise _BadRequest(f"unsupported version {version}")
        headers = Headers(self._read_fields(rfile))

        split = urllib.parse.urlsplit(target)
        path = split.path if target.startswith(("http://", "https://")) \
            else target.split("?", 1)[0]
        query = split.query
        tokens = {t.strip().lower() for v in headers.get_all("Connection")
                  for t in v.split(",")}
        keep = ("close" not in tokens) if version == "HTTP/1.1" \
            else ("keep-alive" in tokens)

        te = ",".join(headers.get_all("Transfer-Encoding")).lower()
        codings = [c.strip() for c in te.split(",") if c.strip()]
        chunked = bool(codings) and codings[-1] == "chunked"
        if codings and not chunked:
            raise _BadRequest(f"unsupported transfer-encoding {te!r}")
        length = 0
        if not chunked:
            lens = {v.strip() for v in headers.get_all("Content-Length")}
            if len(lens) > 1:
                raise _BadRequest(f"conflicting content-length {lens}")
            if lens:
                (cl,) = lens
                if not cl.isdigit():
                    raise _BadRequest(f"bad content-length {cl!r}")
                length = int(cl)
                if length > MAX_BODY:
                    raise _BadRequest("body too large")

        expect = headers.get("Expect", "").lower()
        if version == "HTTP/1.1" and expect == "100-continue" \
                and (chunked or length > 0):
            sock.sendall(b"HTTP/1.1 100 Continue\r\n\r\n")

        trailers = Headers()
        if chunked:
            body, trailers = self._read_chunked(rfile)
        else:
            body = rfile.read(length) if length else b""
            if len(body) < length:
                raise _Gone()
        return Request(method=method, target=target, path=path, query=query,
                       http_version=version, headers=headers, body=body,
                       chunked=chunked, trailers=trailers,
                       time=arrival), keep

    def _read_chunked(self, rfile):
        parts, total = [], 0
        while True:
            line = self._readline(rfile)
            if not line:
                raise _Gone()
            size_text = line.split(b";", 1)[0].strip()
            if not re.fullmatch(rb"[0-9A-Fa-f]{1,16}", size_text):
                raise _BadRequest(f"bad chunk size line {line[:100]!r}")
            size = int(size_text, 16)
            if size == 0:
                break
            total += size
            if total > MAX_BODY:
                raise _BadRequest("body too large")
            data = rfile.read(size)
            if len(data) < size:
                raise _Gone()
            parts.append(data)
            end = self._readline(rfile)
            if end not in (b"\r\n", b"\n"):
                if not end:
                    raise _Gone()
                raise _BadRequest("chunk not followed by CRLF")
        return b"".join(parts), Headers(self._read_fields(rfile))


# ---- signatures ------------------------------------------------------------

def _as_bytes(value):
    return value.encode() if isinstance(value, str) else bytes(value)


def _standard_key(secret):
    """'whsec_<base64>' (or bare base64) str -> key bytes; bytes are the
    key itself."""
    if isinstance(secret, (bytes, bytearray)):
        return bytes(secret)
    s = secret[len("whsec_"):] if secret.startswith("whsec_") else secret
    try:
        return base64.b64decode(s, validate=True)
    except (ValueError, TypeError) as e:
        raise ValueError(f"secret is not base64 after 'whsec_': {e}") from None


def sign_standard_webhooks(secret, msg_id, timestamp, body):
    """The 'v1,<base64>' signature of Standard Webhooks for these values."""
    content = (_as_bytes(str(msg_id)) + b"." + _as_bytes(str(timestamp)) +
               b"." + _as_bytes(body))
    mac = hmac.new(_standard_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(mac).decode()


def verify_standard_webhooks(secrets, headers, body, tolerance=300, now=None):
    """Verify a Standard Webhooks signature (https://www.standardwebhooks.com).

    secrets: one secret or a list ('whsec_' + base64 key, bare base64, or raw
    key bytes); any one may have signed. headers: any mapping or list of
    pairs, looked up case-insensitively: webhook-id, webhook-timestamp
    (Unix seconds), webhook-signature (space-separated 'v1,<base64>'
    entries; other versions are ignored; any one match suffices). body: the
    raw bytes (or str) as sent. The timestamp must be within `tolerance`
    seconds of `now` (default time.time()) either way.

    Signed content: f"{webhook-id}.{webhook-timestamp}.{body}", HMAC-SHA256,
    base64; compared with hmac.compare_digest. Returns True, or raises
    ValueError saying why not.
    """
    if isinstance(secrets, (str, bytes, bytearray)):
        secrets = [secrets]
    secrets = list(secrets)
    if not secrets:
        raise ValueError("no secret given")
    msg_id = _header_lookup(headers, "webhook-id")
    ts = _header_lookup(headers, "webhook-timestamp")
    sig_header = _header_lookup(headers, "webhook-signature")
    for name, value in (("webhook-id", msg_id), ("webhook-timestamp", ts),
                        ("webhook-signature", sig_header)):
        if value is None:
            raise ValueError(f"missing header {name}")
    ts = ts.strip()
    if not re.fullmatch(r"[0-9]{1,12}", ts):
        raise ValueError(f"webhook-timestamp is not Unix seconds: {ts!r}")
    now = time.time() if now is None else now
    if now - int(ts) > tolerance:
        raise ValueError(f"timestamp too old: {ts} is {now - int(ts):.0f}s "
                         f"before now (tolerance {tolerance}s)")
    if int(ts) - now > tolerance:
        raise ValueError(f"timestamp too new: {ts} is {int(ts) - now:.0f}s "
                         f"after now (tolerance {tolerance}s)")
    offered = []
    for entry in sig_header.split(" "):
        version, sep, value = entry.partition(",")
        if sep and version == "v1" and value:
            offered.append(value)
    if not offered:
        raise ValueError(f"no v1 signature in webhook-signature {sig_header!r}")
    expected = [sign_standard_webhooks(s, msg_id, ts, body)[3:]
                for s in secrets]
    for value in offered:
        for exp in expected:
            if hmac.compare_digest(exp.encode(), value.encode("utf-8",
                                                               "replace")):
                return True
    raise ValueError(f"no matching signature: {len(offered)} v1 signature(s) "
                     f"offered, {len(expected)} secret(s) tried")


def github_signature(secret, body, algo="sha256"):
    """GitHub-style signature header value: '<algo>=<hex HMAC of body>'
    (e.g. for X-Hub-Signature-256, algo 'sha256'; 'sha1' for
    X-Hub-Signature)."""
    mac = hmac.new(_as_bytes(secret), _as_bytes(body), getattr(hashlib, algo))
    return f"{algo}={mac.hexdigest()}"


# ---- adnanh/webhook --------------------------------------------------------

WEBHOOK_BIN = os.environ.get("HOOKLINE_WEBHOOK_BIN", "/usr/bin/webhook")


def webhook_available():
    """True if the adnanh/webhook binary is installed and executable."""
    return os.access(WEBHOOK_BIN, os.X_OK)


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class AdnanhWebhook:
    """The real adnanh/webhook receiver (Debian `webhook` 2.8.0), with one
    hook `hook_id` (default "hookline") guarded by a payload-hmac-sha256
    rule on header `header` (default X-Hub-Signature-256). On a match it
    runs a shell script that appends the hook's entire payload, one line per
    delivery, to a file; ``received()`` parses them back.

    Usage::

        with AdnanhWebhook("s3cret") as wh:
            ... POST to wh.url with X-Hub-Signature-256: github_signature(...)
            assert wh.wait_received(1) == [{"a": 1}]

    How webhook 2.8.0 answers POST wh.url (found by experiment):

    * signature matches: ``200``, empty body (Content-Length: 0, no
      Content-Type). The command runs AFTER the answer is sent, so use
      ``wait_received(n)``, not ``received()`` right after the 200.
    * header present, signature wrong: ``500 Internal Server Error``, body
      ``Error occurred while evaluating hook rules.`` (text/plain); log line
      ``error evaluating hook: invalid payload signatures [...]``. Not 403:
      a bad signature is an *error* of the rule, not a mismatch -- the
      configured trigger-rule-mismatch-http-response-code is not used.
      ``trigger-signature-soft-failures: true`` does not change that for a
      bare match rule; only inside an "or" rule is the error softened into a
      mismatch. ``soft_signature_failures=True`` builds exactly that (the
      match wrapped in ``{"or": [...]}``), and then a wrong signature is
      ``403`` ``Hook rules were not satisfied.``
    * signature header missing: ``403``, body ``Hook rules were not
      satisfied.`` (text/plain; the mismatch code configured here), log
      ``parameter node not found: X-Hub-Signature-256``.
    * unknown hook id: ``404`` ``Hook not found.``; ``GET /``: ``200 OK``.

    Signature format: the header value may be ``sha256=<hex>`` or the bare
    lower-case ``<hex>`` -- both match; the prefix must be lower-case
    (``SHA256=...`` fails). Several comma-separated signatures are accepted
    if any one matches. The header NAME is case-insensitive. The HMAC is over
    the raw body bytes.

    Payload: "entire-payload" is webhook's PARSED body re-serialised by Go
    (compact, keys sorted), so compare parsed JSON, not bytes. The body is
    only parsed when Content-Type contains "json" (``application/json``,
    ``application/json; charset=utf-8``); with another or no Content-Type
    the hook still fires (HMAC still checked on the raw body) but the
    payload is ``null`` (received() gives None).
    """

    def __init__(self, secret, header="X-Hub-Signature-256", hook_id="hookline",
                 soft_signature_failures=False, binary=None, start_timeout=10):
        self.secret = secret.decode() if isinstance(secret, bytes) else secret
        self.header = header
        self.hook_id = hook_id
        self.soft_signature_failures = soft_signature_failures
        self.binary = binary or WEBHOOK_BIN
        self.start_timeout = start_timeout
        self.port = None
        self.proc = None
        self._tmp = None
        self.dir = None
        self._final_log = None
        self._final_received = None

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}/hooks/{self.hook_id}"

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.close()

    def _write_files(self):
        self.payloads_path = self.dir / "received.jsonl"
        self.log_path = self.dir / "webhook.log"
        script = self.dir / "record.sh"
        script.write_text("#!/bin/sh\n"
                          f"printf '%s\\n' \"$1\" >> {shlex.quote(str(self.payloads_path))}\n")
        script.chmod(0o755)
        rule = {"match": {"type": "payload-hmac-sha256", "secret": self.secret,
                          "parameter": {"source": "header",
                                        "name": self.header}}}
        hook = {"id": self.hook_id,
                "execute-command": str(script),
                "command-working-directory": str(self.dir),
                "pass-arguments-to-command": [{"source": "entire-payload"}],
                "trigger-rule-mismatch-http-response-code": 403}
        if self.soft_signature_failures:
            rule = {"or": [rule]}
            hook["trigger-signature-soft-failures"] = True
        hook["trigger-rule"] = rule
        self.hooks_path = self.dir / "hooks.json"
        self.hooks_path.write_text(json.dumps([hook], indent=2))

    def start(self):
        """Start webhook on a free port and wait until it listens."""
        if not webhook_available():
            raise RuntimeError(f"{self.binary} is not installed "
                               "(apt-get install -y webhook)")
        self._tmp = tempfile.TemporaryDirectory(prefix="adnanh-webhook-")
        self.dir = Path(self._tmp.name)
        self._write_files()
        for _attempt in range(5):
            self.port = _free_port()
            self.payloads_path.touch()
            with open(self.log_path, "wb") as log:
                self.proc = subprocess.Popen(
                    [self.binary, "-hooks", str(self.hooks_path),
                     "-ip", "127.0.0.1", "-port", str(self.port), "-verbose"],
                    stdin=subprocess.DEVNULL, stdout=log,
                    stderr=subprocess.STDOUT, cwd=self.dir)
            if self._wait_listening():
                return self
            if "address already in use" not in self.log():
                break
        out = self.log()
        self.close()
        raise AssertionError(f"webhook did not start listening:\n{out}")

    def _wait_listening(self):
        deadline = time.monotonic() + self.start_timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            if "serving hooks on" in self.log():
                try:
                    socket.create_connection(("127.0.0.1", self.port),
                                             timeout=0.2).close()
                    return True
                except OSError:
                    pass
            time.sleep(0.01)
        self.proc.kill()
        self.proc.wait()
        return False

    def log(self):
        """webhook's output so far (-verbose: one line per event)."""
        if self._final_log is not None:
            return self._final_log
        try:
            return self.log_path.read_text(errors="replace")
        except (OSError, AttributeError):
            return ""

    def received(self):
        """Payloads the command has run with so far, parsed (None for a
        delivery whose Content-Type was not JSON)."""
        if self._final_received is not None:
            return list(self._final_received)
        try:
            text = self.payloads_path.read_text()
        except (OSError, AttributeError):
            return []
        return [json.loads(line) for line in text.splitlines() if line]

    def wait_received(self, n, timeout=10):
        """Wait until the command has run at least `n` times; return the
        payloads. AssertionError (with the log) on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.received()
            if len(got) >= n:
                return got
            if time.monotonic() >= deadline:
                raise AssertionError(
                    f"webhook ran its command {len(got)} time(s), expected "
                    f"{n} within {timeout}s; log:\n{self.log()}")
            time.sleep(0.01)

    def close(self):
        """Stop webhook (SIGTERM, then SIGKILL) and remove its folder; log()
        and received() keep answering from what was there."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self._tmp is not None:
            self._final_log = self.log()
            self._final_received = self.received()
            self._tmp.cleanup()
            self._tmp = None
