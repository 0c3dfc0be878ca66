"""GET /metrics against the real binary: the Prometheus text format 0.0.4
(checked line by line here, then parsed by prometheus_client), and the
values after known traffic -- intake by source and status, the queue, the
delivery attempts and latency, the circuit, the stream's clients, the
store's commits, normalization -- and the bound on label sets."""
import base64
import json
import math
import os
import re
import socket
import threading
import time

from prometheus_client.parser import text_string_to_metric_families

from conftest import wait_rows
from sink import Sink

ADMIN = "metrics-admin-token-0123456789"
HOOK = "metrics-hook-token"
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
SERIES_BOUND = 200  # HL_METRIC_SERIES

NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
LABEL_VALUE = r'"(?:[^"\\\n]|\\\\|\\"|\\n)*"'
LABELS = rf"\{{(?:{NAME}={LABEL_VALUE}(?:,{NAME}={LABEL_VALUE})*)?\}}"
VALUE = r"(?:[+-]?Inf|NaN|[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?)"
SAMPLE_RE = re.compile(rf"^({NAME})({LABELS})? ({VALUE})$")
HELP_RE = re.compile(rf"^# HELP ({NAME}) (.*)$")
TYPE_RE = re.compile(rf"^# TYPE ({NAME}) (counter|gauge|histogram|summary|untyped)$")


def config(sink, extra=""):
    return f"""\
server:
  listen: 127.0.0.1:0
storage:
  path: ./hookline.db
outbound: {{ allow_networks: [127.0.0.0/8] }}
admin: {{ token: {ADMIN} }}
sources:
  gen:
    kind: generic
    verify: {{ bearer: {{ tokens: [{HOOK}] }} }}
  am:
    kind: alertmanager
    verify: {{ bearer: {{ tokens: [{HOOK}] }} }}
connectors:
  good:
    plugin: webhook
    url: {sink.url("/good")}
  bad:
    plugin: webhook
    url: {sink.url("/bad")}
  flaky:
    plugin: webhook
    url: {sink.url("/flaky")}
    policy: flaky
  held:
    plugin: webhook
    url: {sink.url("/held")}
policies:
  flaky:
    retry: {{ schedule: [0s, 1h], jitter: 0 }}
    circuit: {{ failures: 2, cooldown: 1h }}
routes:
  - match: {{ source: [gen] }}
    to: [good, bad, flaky, held]
{extra}"""


def post(e, source, body, token=HOOK, content_type="application/json"):
    status, _, raw = e.request(
        "POST", f"/v1/hooks/{source}",
        body=body if isinstance(body, bytes) else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}",
                 "Content-Type": content_type})
    return status, raw


def check_exposition(text):
    """The text format 0.0.4, strictly: every line a HELP, a TYPE or a
    sample of the family just declared; HELP then TYPE, once per family;
    no series twice; a histogram's buckets cumulative, in order, ending at
    +Inf with its _count."""
    assert text.endswith("\n"), text[-200:]
    families = {}
    family = kind = None
    seen = set()
    for n, line in enumerate(text.split("\n")[:-1], 1):
        where = f"line {n}: {line!r}"
        if line.startswith("#"):
            m = HELP_RE.match(line)
            if m:
                family, kind = m.group(1), None
                assert family not in families, f"{where}: family twice"
                families[family] = None
                continue
            m = TYPE_RE.match(line)
            assert m, f"{where}: neither HELP nor TYPE"
            assert m.group(1) == family and kind is None, \
                f"{where}: TYPE must follow its family's HELP"
            kind = families[family] = m.group(2)
            continue
        m = SAMPLE_RE.match(line)
        assert m, f"{where}: not a sample line"
        assert kind, f"{where}: a sample before its family's TYPE"
        name, labels = m.group(1), m.group(2) or ""
        suffixes = ("_bucket", "_sum", "_count") if kind == "histogram" \
            else ("",)
        assert any(name == family + s for s in suffixes), \
            f"{where}: not a sample of {family} ({kind})"
        assert (name, labels) not in seen, f"{where}: series twice"
        seen.add((name, labels))
    return families


def parse(text):
    """name -> {"type", "samples": [(sample name, labels, value)]}; counters
    under their full name (the parser drops _total from the family)."""
    out = {}
    for fam in text_string_to_metric_families(text):
        name = fam.name + ("_total" if fam.type == "counter" else "")
        assert fam.type != "untyped", f"untyped family {fam.name}"
        out[name] = {"type": fam.type, "samples": [
            (s.name, dict(s.labels), s.value) for s in fam.samples]}
    return out


def value(fams, sample, **labels):
    """The value of one series, or None when it is not there."""
    family = re.sub(r"_(bucket|sum|count)$", "", sample)
    fam = fams.get(family) or fams.get(sample)
    assert fam is not None, f"no family for {sample}"
    hits = [v for n, lab, v in fam["samples"] if n == sample and lab == labels]
    assert len(hits) <= 1
    return hits[0] if hits else None


def series(fams, family, sample=None):
    """Label sets (without le) of a family's samples named sample."""
    sample = sample or family
    return [lab for n, lab, _ in fams[family]["samples"] if n == sample]


def check_histogram(fams, family, **labels):
    """Buckets cumulative and in order, +Inf equal to _count; returns
    (count, sum)."""
    buckets = [(lab["le"], v) for n, lab, v in fams[family]["samples"]
               if n == family + "_bucket"
               and {k: x for k, x in lab.items() if k != "le"} == labels]
    assert buckets, (family, labels)
    bounds = [float(le) for le, _ in buckets]
    assert bounds == sorted(bounds) and math.isinf(bounds[-1])
    counts = [v for _, v in buckets]
    assert counts == sorted(counts), (family, labels, buckets)
    count = value(fams, family + "_count", **labels)
    total = value(fams, family + "_sum", **labels)
    assert counts[-1] == count, (family, labels)
    return count, total


def scrape(e):
    status, headers, body = e.request("GET", "/metrics")
    assert status == 200, body
    assert headers["Content-Type"] == CONTENT_TYPE
    text = body.decode("utf-8")
    check_exposition(text)
    return text, parse(text)


def scrape_until(e, pred, timeout=20):
    """Scrape until pred(families) is true; returns (text, families)."""
    deadline = time.monotonic() + timeout
    while True:
        text, fams = scrape(e)
        try:
            if pred(fams):
                return text, fams
        except (AssertionError, KeyError, TypeError):
            pass
        if time.monotonic() > deadline:
            raise AssertionError(f"metrics never as expected:\n{text}")
        time.sleep(0.05)


def stream_client(port):
    """A websocket client on /v1/stream, handshake done; the socket."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    key = base64.b64encode(os.urandom(16)).decode()
    s.sendall(("GET /v1/stream HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Upgrade: websocket\r\nConnection: Upgrade\r\n"
               f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n"
               f"Authorization: Bearer {ADMIN}\r\n\r\n").encode())
    head = b""
    while b"\r\n\r\n" not in head:
        chunk = s.recv(4096)
        assert chunk, head
        head += chunk
    assert head.startswith(b"HTTP/1.1 101 "), head
    return s


def test_metrics_after_traffic(engine, tmp_path):
    with Sink() as sink:
        sink.respond_on("/bad", 422, b'{"error":"no"}')
        sink.respond_on("/flaky", 503, b"busy")
        e = engine(config(sink))
        # Before any traffic: the format holds, nothing counted yet, every
        # connector's circuit closed, no stream client.
        text, fams = scrape(e)
        assert fams["hookline_intake_requests_total"]["samples"] == []
        for name in ("good", "bad", "flaky", "held"):
            assert value(fams, "hookline_circuit_state", connector=name) == 0
        assert value(fams, "hookline_stream_clients") == 0

        status, _, raw = e.request("POST", "/v1/connectors/held/pause",
                                   body=b"", headers={
                                       "Authorization": f"Bearer {ADMIN}"})
        assert status == 200, raw
        assert post(e, "gen", {"title": "one"})[0] == 202
        assert post(e, "gen", {"title": "two"})[0] == 202
        assert post(e, "am", b'{"alerts":"not a list"}')[0] == 202
        assert post(e, "gen", {"title": "x"}, token="wrong")[0] == 401
        assert post(e, "gen", b"{not json")[0] == 400
        assert post(e, "gen", b"title=x",
                    content_type="application/x-www-form-urlencoded")[0] == 415
        assert e.request("GET", "/v1/hooks/gen")[0] == 405
        assert post(e, "nosuch", {"title": "x"})[0] == 404
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT connector, state, count(*) FROM deliveries "
                      "GROUP BY connector, state ORDER BY connector",
                  [("bad", "failed", 2), ("flaky", "retrying", 2),
                   ("good", "delivered", 2), ("held", "queued", 2)])
        client = stream_client(e.port)

        def settled(f):
            return (value(f, "hookline_stream_clients") == 1
                    and value(f, "hookline_circuit_state",
                              connector="flaky") == 1
                    and value(f, "hookline_webhooks_normalized_total",
                              source="am", result="unparsed") == 1
                    and value(f, "hookline_webhooks_normalized_total",
                              source="gen", result="normalized") == 2)
        text, fams = scrape_until(e, settled)

        # Intake: every answer counted by source and status; an unknown
        # source as _unknown.
        got = {(lab["source"], lab["status"]): v for _, lab, v in
               fams["hookline_intake_requests_total"]["samples"]}
        assert got == {("gen", "202"): 2, ("am", "202"): 1, ("gen", "401"): 1,
                       ("gen", "400"): 1, ("gen", "415"): 1, ("gen", "405"): 1,
                       ("_unknown", "404"): 1}
        assert fams["hookline_intake_requests_total"]["type"] == "counter"
        # Its duration: the stored ones only.
        assert fams["hookline_intake_duration_seconds"]["type"] == "histogram"
        assert series(fams, "hookline_intake_duration_seconds",
                      "hookline_intake_duration_seconds_count") == [
            {"source": "gen"}, {"source": "am"}]
        count, total = check_histogram(fams, "hookline_intake_duration_seconds",
                                       source="gen")
        assert count == 2 and 0 < total < 60
        assert check_histogram(fams, "hookline_intake_duration_seconds",
                               source="am")[0] == 1

        # The queue: what waits, by connector and state.
        assert fams["hookline_queue_depth"]["type"] == "gauge"
        depth = {(lab["connector"], lab["state"]): v for _, lab, v in
                 fams["hookline_queue_depth"]["samples"]}
        assert depth == {("held", "queued"): 2, ("flaky", "retrying"): 2}
        assert value(fams, "hookline_backlog") == 4

        # Attempts by outcome; latency for what was delivered.
        attempts = {(lab["connector"], lab["outcome"]): v for _, lab, v in
                    fams["hookline_delivery_attempts_total"]["samples"]}
        assert attempts == {("good", "delivered"): 2, ("bad", "failed"): 2,
                            ("flaky", "retry"): 2}
        assert series(fams, "hookline_delivery_latency_seconds",
                      "hookline_delivery_latency_seconds_count") == [
            {"connector": "good"}]
        count, total = check_histogram(
            fams, "hookline_delivery_latency_seconds", connector="good")
        assert count == 2 and 0 <= total < 60

        # The circuit: flaky's opened after two failures, the others closed.
        circuit = {lab["connector"]: v for _, lab, v in
                   fams["hookline_circuit_state"]["samples"]}
        assert circuit == {"good": 0, "bad": 0, "flaky": 1, "held": 0}

        # The store: batch sizes and commit times, one of each per commit.
        batches, writes = check_histogram(
            fams, "hookline_store_commit_batch_size")
        commits, took = check_histogram(
            fams, "hookline_store_commit_duration_seconds")
        assert batches == commits >= 3
        fsyncs, fsync_took = check_histogram(
            fams, "hookline_store_fsync_seconds")
        assert fsyncs == commits and 0 < fsync_took <= took
        # Three webhooks, three settled, eight deliveries' outcomes and six
        # attempts at least.
        assert writes >= 3
        assert 0 < took < 60
        les = [lab["le"] for n, lab, _ in
               fams["hookline_store_commit_batch_size"]["samples"]
               if n.endswith("_bucket")]
        assert les == ["1", "2", "4", "8", "16", "32", "64", "128", "256",
                       "512", "1024", "+Inf"]

        # Normalization by source and result.
        norm = {(lab["source"], lab["result"]): v for _, lab, v in
                fams["hookline_webhooks_normalized_total"]["samples"]}
        assert norm == {("gen", "normalized"): 2, ("am", "unparsed"): 1}

        # The stream's clients: one, then none.
        client.close()
        scrape_until(e, lambda f: value(f, "hookline_stream_clients") == 0)

        # No token is needed, a wrong one is not looked at, HEAD has no body.
        status, _, _ = e.request("GET", "/metrics",
                                 headers={"Authorization": "Bearer nope"})
        assert status == 200
        status, headers, body = e.request("HEAD", "/metrics")
        assert (status, body) == (200, b"")
        assert headers["Content-Type"] == CONTENT_TYPE
        status, headers, _ = e.request("POST", "/metrics", body=b"")
        assert status == 405
        assert e.stop() == 0


def test_label_sets_are_bounded(engine, tmp_path):
    """No label value can hold a quote, a backslash or a newline (names of
    sources and connectors are [A-Za-z0-9._-]), so what is left to check is
    the bound: past 200 label sets in a family, the rest share one series
    whose labels are all "_other"."""
    n = SERIES_BOUND + 10
    names = [f"src{i:03d}" for i in range(n)]
    sources = "".join(
        f"  {s}:\n    kind: generic\n"
        f"    verify: {{ bearer: {{ tokens: [{HOOK}] }} }}\n" for s in names)
    e = engine(f"""\
server:
  listen: 127.0.0.1:0
storage:
  path: ./hookline.db
sources:
{sources}""")
    unposted = iter(names)
    failures = []

    def worker():
        for s in unposted:
            status, raw = post(e, s, {"title": s})
            if status != 202:
                failures.append((s, status, raw))

    threads = [threading.Thread(target=worker) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not failures
    wait_rows(tmp_path / "hookline.db",
              "SELECT count(*) FROM events WHERE state = 'normalized'",
              [(n,)], timeout=60)

    def normalized_all(f):
        return sum(v for _, _, v in f["hookline_webhooks_normalized_total"]
                   ["samples"]) == n
    text, fams = scrape_until(e, normalized_all)

    req = fams["hookline_intake_requests_total"]["samples"]
    assert len(req) == SERIES_BOUND + 1
    named = [(lab, v) for _, lab, v in req if lab["source"] != "_other"]
    assert len(named) == SERIES_BOUND
    assert all(v == 1 and lab["status"] == "202" and lab["source"] in names
               for lab, v in named)
    assert len({lab["source"] for lab, _ in named}) == SERIES_BOUND
    assert value(fams, "hookline_intake_requests_total",
                 source="_other", status="_other") == n - SERIES_BOUND
    # The histogram family is bounded the same way.
    counts = series(fams, "hookline_intake_duration_seconds",
                    "hookline_intake_duration_seconds_count")
    assert len(counts) == SERIES_BOUND + 1 and counts[-1] == {"source": "_other"}
    assert check_histogram(fams, "hookline_intake_duration_seconds",
                           source="_other")[0] == n - SERIES_BOUND
    norm = fams["hookline_webhooks_normalized_total"]["samples"]
    assert len(norm) == SERIES_BOUND + 1
    assert value(fams, "hookline_webhooks_normalized_total",
                 source="_other", result="_other") == n - SERIES_BOUND
    # A label set that has its series keeps counting there.
    first = named[0][0]["source"]
    assert post(e, first, {"title": "again"})[0] == 202
    text, fams = scrape(e)
    assert value(fams, "hookline_intake_requests_total",
                 source=first, status="202") == 2
    assert value(fams, "hookline_intake_requests_total",
                 source="_other", status="_other") == n - SERIES_BOUND
    assert e.stop() == 0
