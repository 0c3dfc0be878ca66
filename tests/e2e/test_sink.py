"""Tests of the test helpers in sink.py themselves: the Sink's HTTP/1.1
handling and fault injection, the independent signature code against
published vectors, and how the real adnanh/webhook receiver answers."""
import http.client
import json
import socket
import threading
import time
from pathlib import Path

import pytest

from sink import (AdnanhWebhook, Answer, Close, Hang, Headers, Reset, Sink,
                  Slow, github_signature, sign_standard_webhooks,
                  verify_standard_webhooks, webhook_available)

VECTORS = Path("/work/shared/fixtures/signatures/vectors.json")


def post(url_or_sink, path="/hook", body=b"{}", headers=None, timeout=5):
    """One POST on a fresh connection -> (status, headers dict, body)."""
    port = url_or_sink.port
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("POST", path, body=body,
                     headers={"Content-Type": "application/json",
                              **(headers or {})})
        resp = conn.getresponse()
        return resp.status, dict(resp.getheaders()), resp.read()
    finally:
        conn.close()


def raw(sink, data, timeout=5):
    """Send raw bytes, read until EOF; -> bytes."""
    with socket.create_connection(("127.0.0.1", sink.port), timeout=timeout) as s:
        s.sendall(data)
        out = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                return out
            out += chunk


# ---- Sink: recording -------------------------------------------------------

def test_records_requests_and_answers_default():
    with Sink() as s:
        assert s.url() == f"http://127.0.0.1:{s.port}/hook"
        assert s.url("x") == f"http://127.0.0.1:{s.port}/x"
        before = time.monotonic()
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
        conn.putrequest("POST", "/hook?a=1&b=&a=2")
        conn.putheader("Content-Type", "application/json")
        conn.putheader("X-Dup", "one")
        conn.putheader("x-dup", "two")
        conn.putheader("Content-Length", "8")
        conn.endheaders(b'{"k": 1}')
        resp = conn.getresponse()
        assert resp.status == 200
        assert resp.getheader("Content-Type") == "application/json"
        assert resp.read() == b'{"ok":true}'
        conn.close()

        (r,) = s.wait_for(1)
        assert (r.method, r.path, r.query) == ("POST", "/hook", "a=1&b=&a=2")
        assert r.query_params == {"a": ["1", "2"], "b": [""]}
        assert r.headers["content-type"] == "application/json"
        assert r.headers.get("CONTENT-TYPE") == "application/json"
        assert "x-DUP" in r.headers
        assert r.headers["X-Dup"] == "one"
        assert r.headers.get_all("x-dup") == ["one", "two"]
        assert r.headers.get_all("absent") == []
        assert r.body == b'{"k": 1}' and r.json() == {"k": 1}
        assert before <= r.time <= time.monotonic()
        assert r.answer_status == 200
        assert (r.conn_id, r.conn_seq, r.index) == (1, 1, 0)
        assert s.connections == 1
        assert len(s.requests) == 1


def test_headers_mapping():
    h = Headers([("A", "1"), ("b", "2"), ("a", "3")])
    assert list(h) == ["A", "b"] and len(h) == 2
    assert dict(h) == {"A": "1", "b": "2"}
    assert h.get_all("A") == ["1", "3"]
    assert h.get("c", "d") == "d"


def test_wait_for_filters_path_and_times_out_with_message():
    with Sink() as s:
        post(s, "/a")
        post(s, "/b")
        post(s, "/a")
        got = s.wait_for(2, path="/a")
        assert [r.path for r in got] == ["/a", "/a"]
        assert len(s.wait_for(3)) == 3
        t0 = time.monotonic()
        with pytest.raises(AssertionError) as e:
            s.wait_for(1, timeout=0.2, path="/c")
        assert 0.2 <= time.monotonic() - t0 < 2
        assert "on /c" in str(e.value) and "got 0" in str(e.value)
        assert "/b" in str(e.value)          # names what did arrive
        s.clear()
        assert s.requests == []


def test_keep_alive_reuses_connection():
    with Sink() as s:
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
        for i in range(3):
            conn.request("POST", "/hook", body=json.dumps({"i": i}))
            resp = conn.getresponse()
            assert resp.status == 200 and resp.read() == b'{"ok":true}'
        conn.close()
        reqs = s.wait_for(3)
        assert [r.json()["i"] for r in reqs] == [0, 1, 2]
        assert [(r.conn_id, r.conn_seq) for r in reqs] == [(1, 1), (1, 2), (1, 3)]
        assert s.connections == 1


def test_chunked_body_trailers_and_pipelining():
    with Sink() as s:
        req = (b"POST /c HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
               b"4;ext=1\r\nabcd\r\nA\r\n0123456789\r\n0\r\nX-Trailer: t\r\n\r\n"
               b"GET /d HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        out = raw(s, req)
        assert out.count(b"HTTP/1.1 200 OK") == 2
        assert out.rstrip().endswith(b'{"ok":true}')
        r1, r2 = s.wait_for(2)
        assert r1.chunked and r1.body == b"abcd0123456789"
        assert r1.trailers["x-trailer"] == "t"
        assert (r2.method, r2.path, r2.body) == ("GET", "/d", b"")
        assert r2.conn_seq == 2

        # http.client's own chunked encoding
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
        conn.request("POST", "/e", body=iter([b"he", b"llo"]),
                     encode_chunked=True,
                     headers={"Transfer-Encoding": "chunked"})
        assert conn.getresponse().status == 200
        conn.close()
        assert s.wait_for(1, path="/e")[0].body == b"hello"


def test_expect_100_continue_and_http10():
    with Sink() as s:
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
            c.sendall(b"POST /x HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n"
                      b"Expect: 100-continue\r\nConnection: close\r\n\r\n")
            assert c.recv(100).startswith(b"HTTP/1.1 100 Continue\r\n\r\n")
            c.sendall(b"abc")
            rest = b""
            while chunk := c.recv(4096):
                rest += chunk
            assert b"200 OK" in rest
        assert s.wait_for(1)[0].body == b"abc"
        out = raw(s, b"GET /old HTTP/1.0\r\n\r\n")   # 1.0: closes by default
        assert out.startswith(b"HTTP/1.1 200 OK") and b"Connection: close" in out


def test_bad_request_is_recorded_as_error():
    with Sink() as s:
        out = raw(s, b"POST /x HTTP/1.1\r\nContent-Length: zz\r\n\r\n")
        assert out.startswith(b"HTTP/1.1 400 ")
        assert s.requests == [] and "content-length" in s.errors[0]


# ---- Sink: behaviours ------------------------------------------------------

def test_respond_script_and_per_path_precedence():
    with Sink() as s:
        s.respond(500, b"down")
        s.respond_on("/p", 202, {"x": 1})
        s.script([Answer(429, headers={"Retry-After": "2"}),
                  {"status": 503, "headers": [("Retry-After", "7")]}, 201])
        s.script_on("/p", [418])
        assert s.pending() == 3 and s.pending("/p") == 1

        st, hd, body = post(s, "/p")                 # path script first
        assert st == 418
        st, hd, body = post(s, "/p")                 # then the global script
        assert (st, hd["Retry-After"]) == (429, "2")
        st, hd, _ = post(s, "/q")
        assert (st, hd["Retry-After"]) == (503, "7")
        assert post(s, "/q")[0] == 201
        st, hd, body = post(s, "/p")                 # path default
        assert (st, body, hd["Content-Type"]) == (202, b'{"x":1}', "application/json")
        assert post(s, "/q")[:3:2] == (500, b"down")  # sink default
        assert [r.answer_status for r in s.requests] == [418, 429, 503, 201, 202, 500]


def test_handler_custom_logic_and_fallthrough():
    with Sink() as s:
        def handler(req):
            if req.headers.get("X-Fail"):
                return Answer(int(req.headers["X-Fail"]), b"nope")
            if req.path == "/boom":
                raise RuntimeError("handler bug")
            return None                              # fall through
        s.handler = handler
        assert post(s, headers={"X-Fail": "409"})[::2] == (409, b"nope")
        assert post(s)[::2] == (200, b'{"ok":true}')
        st, _, body = post(s, "/boom")
        assert st == 500 and b"handler bug" in body
        assert "handler bug" in s.errors[0]


def test_delay_and_slow():
    with Sink() as s:
        s.script([Answer(200, b"late", delay=0.3),
                  Slow(200, b"abcdef", chunk_delay=0.05, chunk_size=2)])
        t0 = time.monotonic()
        assert post(s)[::2] == (200, b"late")
        assert time.monotonic() - t0 >= 0.3
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
            c.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
            t0 = time.monotonic()
            pieces = []
            while b"abcdef" not in b"".join(pieces):
                pieces.append(c.recv(4096))
            assert time.monotonic() - t0 >= 0.15
            assert b"Content-Length: 6" in pieces[0]
            assert len(pieces) >= 3                     # it did trickle
        assert s.wait_for(2)[1].answer_status == 200


def test_hang_keeps_socket_open_until_close():
    s = Sink()
    s.script([Hang()])
    c = socket.create_connection(("127.0.0.1", s.port), timeout=0.3)
    c.sendall(b"POST /h HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nhi")
    with pytest.raises(socket.timeout):
        c.recv(100)
    (r,) = s.wait_for(1)
    assert r.body == b"hi" and r.answer_status is None
    assert isinstance(r.behaviour, Hang) and s.open_connections == 1
    t0 = time.monotonic()
    s.close()
    assert time.monotonic() - t0 < 1
    c.settimeout(2)
    assert c.recv(100) == b""                         # closed by the sink
    c.close()
    assert s.open_connections == 0


def test_reset_gives_rst_and_close_gives_eof():
    with Sink() as s:
        s.script(["reset", Close()])
        with socket.create_connection(("127.0.0.1", s.port), timeout=5) as c:
            c.sendall(b"POST /r HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n")
            with pytest.raises(ConnectionResetError):
                c.recv(100)
        with pytest.raises(http.client.RemoteDisconnected):
            post(s, "/c")
        assert [r.path for r in s.wait_for(2)] == ["/r", "/c"]
        assert [r.answer_status for r in s.requests] == [None, None]
        # the default applies again afterwards
        assert post(s)[0] == 200
        assert s.connections == 3


def test_concurrent_connections_are_served_in_parallel():
    with Sink() as s:
        s.respond(200, b"x", delay=0.3)
        results = []
        threads = [threading.Thread(target=lambda: results.append(post(s)[0]))
                   for _ in range(5)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        assert results == [200] * 5
        assert time.monotonic() - t0 < 1.2
        assert s.connections == 5


def test_answer_close_and_behaviour_shorthands():
    with Sink() as s:
        s.respond({"kind": "answer", "status": 204, "close": True})
        conn = http.client.HTTPConnection("127.0.0.1", s.port, timeout=5)
        conn.request("GET", "/")
        resp = conn.getresponse()
        assert resp.status == 204 and resp.getheader("Connection") == "close"
        with pytest.raises(TypeError):
            s.script([object()])
        with pytest.raises(ValueError):
            s.script([{"kind": "explode"}])


# ---- signatures ------------------------------------------------------------

def test_standard_webhooks_vector():
    v = json.loads(VECTORS.read_text())["standard_webhooks"]
    ts = int(v["webhook-timestamp"])
    headers = {"Webhook-Id": v["webhook-id"],
               "Webhook-Timestamp": v["webhook-timestamp"],
               "Webhook-Signature": v["webhook-signature"]}
    body = v["body"].encode()
    assert sign_standard_webhooks(v["secret"], v["webhook-id"], ts, body) \
        == v["webhook-signature"]
    assert verify_standard_webhooks(v["secret"], headers, body, now=ts) is True
    # several signatures: any one suffices; several secrets: any one signed
    multi = dict(headers, **{"Webhook-Signature":
                             f"v2,abc {v['wrong_signature']} {v['webhook-signature']}"})
    assert verify_standard_webhooks(["whsec_AAAA", v["secret"]], multi, body,
                                    now=ts + 299)

    def reason(**kw):
        args = dict(secrets=v["secret"], headers=headers, body=body, now=ts)
        args.update(kw)
        with pytest.raises(ValueError) as e:
            verify_standard_webhooks(**args)
        return str(e.value)

    assert "no matching signature" in reason(
        headers=dict(headers, **{"Webhook-Signature": v["wrong_signature"]}))
    assert "no matching" in reason(body=body + b" ")
    assert "too old" in reason(now=ts + 301)
    assert "too new" in reason(now=ts - 301)
    assert "webhook-id" in reason(headers={k: x for k, x in headers.items()
                                           if k != "Webhook-Id"})
    assert "no v1" in reason(headers=dict(headers, **{"Webhook-Signature": "v2,x"}))
    assert "timestamp" in reason(headers=dict(headers, **{"Webhook-Timestamp": "1e9"}))
    assert verify_standard_webhooks(v["secret"], headers, body,
                                    tolerance=10**10)   # real clock


def test_github_signature_vector():
    v = json.loads(VECTORS.read_text())["github_sha256"]
    assert github_signature(v["secret"], v["body"].encode()) == v["value"]
    assert github_signature(v["secret"].encode(), v["body"]) == v["value"]
    assert github_signature("k", b"x", algo="sha1").startswith("sha1=")


# ---- adnanh/webhook ---------------------------------------------------------

needs_webhook = pytest.mark.skipif(not webhook_available(),
                                   reason="/usr/bin/webhook is not installed")


def wh_post(wh, body, signature=None, header="X-Hub-Signature-256",
            content_type="application/json"):
    conn = http.client.HTTPConnection("127.0.0.1", wh.port, timeout=5)
    headers = {"Content-Type": content_type}
    if signature is not None:
        headers[header] = signature
    try:
        conn.request("POST", f"/hooks/{wh.hook_id}", body=body, headers=headers)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


@needs_webhook
def test_adnanh_webhook_signed_and_wrongly_signed():
    secret = "It's a Secret to Everybody"
    body = b'{"event": "ping", "n": 1}'
    good = github_signature(secret, body)
    with AdnanhWebhook(secret) as wh:
        assert wh.url == f"http://127.0.0.1:{wh.port}/hooks/hookline"
        assert wh_post(wh, body, good) == (200, b"")
        assert wh_post(wh, body, good[len("sha256="):]) == (200, b"")   # bare hex
        assert wh_post(wh, body, github_signature("other", body)) == \
            (500, b"Error occurred while evaluating hook rules.")
        assert wh_post(wh, body + b" ", good)[0] == 500                 # tampered
        assert wh_post(wh, body, "SHA256=" + good[7:])[0] == 500        # case
        assert wh_post(wh, body) == (403, b"Hook rules were not satisfied.")
        assert wh.wait_received(2) == [{"event": "ping", "n": 1}] * 2
        time.sleep(0.05)
        assert len(wh.received()) == 2                  # nothing else ran
        assert "invalid payload signatures" in wh.log()
    assert len(wh.received()) == 2 and "hookline" in wh.log()  # kept after close


@needs_webhook
def test_adnanh_webhook_soft_failures_answer_403():
    with AdnanhWebhook("k", header="X-Sig", soft_signature_failures=True) as wh:
        body = b'{"a": 1}'
        assert wh_post(wh, body, "sha256=00", header="X-Sig") == \
            (403, b"Hook rules were not satisfied.")
        assert wh_post(wh, body, github_signature("k", body), header="X-Sig",
                       content_type="text/plain") == (200, b"")
        assert wh.wait_received(1) == [None]            # not parsed: null
