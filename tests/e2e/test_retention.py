"""Retention through the running engine: storage.retention.delivered and
.failed purge finished webhooks (events, canonical, deliveries, attempts
rows) off the hot path, keep unfinished ones whatever their age, trim the
stream's notes, and give the space back (incremental vacuum).

What is kept or gone is read from the SQLite file as a user would, with
sqlite3 (conftest.db_rows); waits poll with generous timeouts."""
import json
import re
import time

import pytest

from conftest import db_rows, run_cli, wait_rows
from sink import Sink
from test_policies import post_many

ADMIN = "retention-admin-token-0123456789"
HOOK = "ret-hook-token"


def config(retention, sink=None, extra=""):
    """Sources gen (generic; the payload's type picks the route) and am
    (alertmanager). With a sink: connectors ok (200), bad (400: failed at
    once), slow (503 with an hour between attempts: retrying) and held
    (paused by the test: queued)."""
    connectors = routes = ""
    if sink:
        connectors = f"""\
outbound: {{ allow_networks: [127.0.0.0/8] }}
connectors:
  ok: {{ plugin: webhook, url: "{sink.url('/ok')}" }}
  bad: {{ plugin: webhook, url: "{sink.url('/bad')}" }}
  slow: {{ plugin: webhook, url: "{sink.url('/slow')}", policy: later }}
  held: {{ plugin: webhook, url: "{sink.url('/held')}" }}
policies:
  later:
    retry: {{ schedule: [0s, 1h], jitter: none }}
"""
        routes = "routes:\n" + "".join(
            f"  - match: {{ type: to.{n} }}\n    to: [{n}]\n"
            for n in ("ok", "bad", "slow", "held"))
    return f"""\
server:
  listen: 127.0.0.1:0
storage:
  path: ./hookline.db
  durability: normal
  retention: {retention}
log:
  level: debug
admin:
  token: {ADMIN}
sources:
  gen:
    kind: generic
    verify: {{ bearer: {{ tokens: [{HOOK}] }} }}
  am:
    kind: alertmanager
    verify: {{ bearer: {{ tokens: [{HOOK}] }} }}
{connectors}{routes}{extra}"""


def post(e, body, source="gen"):
    raw = body if isinstance(body, bytes) else json.dumps(body).encode()
    status, _, answer = e.request(
        "POST", f"/v1/hooks/{source}", body=raw,
        headers={"Authorization": f"Bearer {HOOK}",
                 "Content-Type": "application/json"})
    assert status == 202, answer
    return json.loads(answer)["id"]


def admin(e, method, path):
    status, _, raw = e.request(method, path,
                               headers={"Authorization": f"Bearer {ADMIN}"})
    return status, json.loads(raw) if raw else None


def rows_of(db, event_id):
    """How many rows of the webhook each table holds."""
    one = lambda sql: db_rows(db, sql, (event_id,))[0][0]  # noqa: E731
    return {
        "events": one("SELECT count(*) FROM events WHERE id = ?"),
        "canonical": one("SELECT count(*) FROM canonical WHERE event_id = ?"),
        "deliveries": one("SELECT count(*) FROM deliveries "
                          "WHERE event_id = ?"),
        "attempts": one("SELECT count(*) FROM attempts WHERE delivery_id IN "
                        "(SELECT id FROM deliveries WHERE event_id = ?)"),
    }


def gone(db, *event_ids):
    return db_rows(db, "SELECT count(*) FROM events WHERE id IN (%s)"
                   % ",".join("?" * len(event_ids)), event_ids) == [(0,)]


def wait_gone(db, *event_ids, timeout=30):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if gone(db, *event_ids):
            return
        time.sleep(0.03)
    raise AssertionError(f"not purged within {timeout}s: " + repr(db_rows(
        db, "SELECT id, state, received_at FROM events")))


def purged_batches(e):
    """How many webhooks each purge pass removed, from the log."""
    return [int(n) for n in re.findall(
        r"purged events past retention events=(\d+)", e.log())]


def purged_count(e):
    return sum(purged_batches(e))


def now_ms():
    return int(time.time() * 1000)


# ---- the configuration ---------------------------------------------------

def test_retention_is_at_least_a_second(tmp_path):
    cfg = tmp_path / "hookline.yaml"
    cfg.write_text(config("{ delivered: 500ms, failed: 0s }"))
    p = run_cli("check", "-c", str(cfg))
    assert p.returncode == 1
    assert ("storage.retention.delivered: duration '500ms' is out of range; "
            "use from 1s to 3650d") in p.stderr
    assert ("storage.retention.failed: duration '0s' is out of range; "
            "use from 1s to 3650d") in p.stderr
    cfg.write_text(config("{ delivered: 1s, failed: 1s }"))
    assert run_cli("check", "-c", str(cfg)).returncode == 0


# ---- what is purged and what is kept -------------------------------------

def test_finished_webhooks_are_purged_unfinished_ones_kept(engine, tmp_path):
    """delivered: 1s, failed: 4s. The delivered and the unrouted webhook go
    first with every row of theirs; the failed and the unparsed one (which
    counts as failed) after the longer retention; one retrying and one
    queued behind a paused connector stay however old they get, and once
    delivered they go too."""
    db = tmp_path / "hookline.db"
    with Sink() as sink:
        sink.respond_on("/bad", 400, b"no")
        sink.respond_on("/slow", 503, b"later")
        e = engine(config("{ delivered: 1s, failed: 4s }", sink))
        assert admin(e, "POST", "/v1/connectors/held/pause")[0] == 200
        ids = {n: post(e, {"title": n, "type": f"to.{n}"})
               for n in ("ok", "bad", "slow", "held")}
        ids["unrouted"] = post(e, {"title": "nobody", "type": "to.nowhere"})
        ids["unparsed"] = post(e, b'{"alerts": "not a list"}', source="am")
        wait_rows(db, "SELECT connector, state FROM deliveries "
                      "ORDER BY connector",
                  [("bad", "failed"), ("held", "queued"), ("ok", "delivered"),
                   ("slow", "retrying")])
        wait_rows(db, "SELECT count(*) FROM events WHERE state = 'received'",
                  [(0,)])
        before = {n: rows_of(db, i) for n, i in ids.items()}
        assert before["ok"] == {"events": 1, "canonical": 1, "deliveries": 1,
                                "attempts": 1}
        assert before["unrouted"] == {"events": 1, "canonical": 1,
                                      "deliveries": 0, "attempts": 0}
        assert before["unparsed"] == {"events": 1, "canonical": 0,
                                      "deliveries": 0, "attempts": 0}
        (bad_done,), = db_rows(db, "SELECT updated_at FROM deliveries "
                                   "WHERE connector = 'bad'")

        # Past the delivered retention.
        wait_gone(db, ids["ok"], ids["unrouted"])
        if now_ms() - bad_done < 3000:  # well inside the failed retention
            assert not gone(db, ids["bad"]) and not gone(db, ids["unparsed"])
        for n in ("ok", "unrouted"):
            assert rows_of(db, ids[n]) == {"events": 0, "canonical": 0,
                                           "deliveries": 0, "attempts": 0}, n
            status, _ = admin(e, "GET", f"/v1/events/{ids[n]}")
            assert status == 404
        (sent,) = [r for r in sink.requests if r.path == "/ok"]
        assert db_rows(db, "SELECT count(*) FROM attempts WHERE delivery_id "
                           "= ?", (sent.headers["idempotency-key"],)) == [(0,)]

        # Past the failed retention.
        wait_gone(db, ids["bad"], ids["unparsed"])
        for n in ("bad", "unparsed"):
            assert rows_of(db, ids[n]) == {"events": 0, "canonical": 0,
                                           "deliveries": 0, "attempts": 0}, n

        # Unfinished ones stay, every row of them, older than both.
        (oldest,), = db_rows(db, "SELECT min(received_at) FROM events")
        assert now_ms() - oldest > 4000
        assert rows_of(db, ids["slow"]) == before["slow"]
        assert rows_of(db, ids["held"]) == before["held"]
        assert db_rows(db, "SELECT connector, state FROM deliveries "
                           "ORDER BY connector") == [("held", "queued"),
                                                     ("slow", "retrying")]
        status, doc = admin(e, "GET", f"/v1/events/{ids['held']}")
        assert status == 200 and doc["deliveries"][0]["state"] == "queued"

        # Delivered at last: purged after the delivered retention.
        assert admin(e, "POST", "/v1/connectors/held/resume")[0] == 200
        sink.wait_for(1, path="/held")
        wait_gone(db, ids["held"])
        assert rows_of(db, ids["held"])["deliveries"] == 0
        assert rows_of(db, ids["slow"]) == before["slow"]
        # Logged once its commit is answered: a moment after the rows go.
        deadline = time.monotonic() + 10
        while purged_count(e) < 5 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert purged_count(e) == 5
        assert e.stop() == 0


def test_failed_retention_shorter_than_delivered(engine, tmp_path):
    db = tmp_path / "hookline.db"
    with Sink() as sink:
        sink.respond_on("/bad", 400, b"no")
        e = engine(config("{ delivered: 1h, failed: 1s }", sink))
        unparsed = post(e, b'{"alerts": 5}', source="am")
        failed = post(e, {"title": "refused", "type": "to.bad"})
        kept = post(e, {"title": "fine", "type": "to.ok"})
        wait_rows(db, "SELECT connector, state FROM deliveries "
                      "ORDER BY connector",
                  [("bad", "failed"), ("ok", "delivered")])
        wait_gone(db, unparsed)  # unparsed follows the failed retention
        assert not gone(db, kept)
        wait_gone(db, failed, timeout=6)
        assert rows_of(db, failed) == {"events": 0, "canonical": 0,
                                       "deliveries": 0, "attempts": 0}
        assert not gone(db, kept)
        assert e.stop() == 0


def test_stream_notes_kept_as_long_as_the_shorter_retention(engine,
                                                            tmp_path):
    db = tmp_path / "hookline.db"
    with Sink() as sink:
        e = engine(config("{ delivered: 1s, failed: 1h }", sink))
        event_id = post(e, {"title": "noted", "type": "to.ok"})
        wait_rows(db, "SELECT state FROM deliveries", [("delivered",)])
        (notes,), = db_rows(db, "SELECT count(*) FROM stream")
        assert notes > 0
        wait_gone(db, event_id)
        # Every note is of that webhook, older than the shorter retention.
        wait_rows(db, "SELECT count(*) FROM stream WHERE at < ?", [(0,)],
                  args=(now_ms(),), timeout=5)
        assert e.stop() == 0


# ---- batches and space ---------------------------------------------------

def test_purge_goes_in_batches(engine, tmp_path):
    """510 unrouted webhooks stored under a long retention; started again
    with a short one, they are purged in batches of at most 500, every row
    of them."""
    db = tmp_path / "hookline.db"
    e = engine(config("{ delivered: 1h, failed: 1h }"))
    for start in range(0, 510, 170):
        post_many(e, [{"title": f"bulk {i}"}
                      for i in range(start, start + 170)], token=HOOK)
    wait_rows(db, "SELECT count(*) FROM events WHERE state = 'normalized'",
              [(510,)], timeout=40)
    assert db_rows(db, "SELECT count(*) FROM canonical") == [(510,)]
    assert e.stop() == 0

    e = engine(config("{ delivered: 1s, failed: 1s }"), name="short.yaml")
    wait_rows(db, "SELECT count(*) FROM events", [(0,)], timeout=40)
    assert db_rows(db, "SELECT count(*) FROM canonical") == [(0,)]
    deadline = time.monotonic() + 10
    while purged_count(e) < 510 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert purged_batches(e) == [500, 10]
    assert e.stop() == 0


def test_webhooks_after_a_full_purge_are_normalized(engine, tmp_path):
    db = tmp_path / "hookline.db"
    e = engine(config("{ delivered: 1s, failed: 1s }"))
    first = post(e, {"title": "soon gone"})
    wait_rows(db, "SELECT state FROM events", [("normalized",)])
    wait_gone(db, first)
    second = post(e, {"title": "after the purge"})
    wait_rows(db, "SELECT id, state FROM events", [(second, "normalized")],
              timeout=6)
    assert e.stop() == 0


def test_purge_gives_the_space_back(engine, tmp_path):
    """The pages purged webhooks held leave the file (incremental vacuum)
    instead of staying on the freelist."""
    db = tmp_path / "hookline.db"
    e = engine(config("{ delivered: 1s, failed: 1s }"))
    assert db_rows(db, "PRAGMA auto_vacuum") == [(2,)]  # incremental
    post_many(e, [{"title": f"bulk {i}", "text": "x" * 8000}
                  for i in range(60)], token=HOOK)
    wait_rows(db, "SELECT count(*) FROM canonical", [(60,)], timeout=30)
    (page_size,), = db_rows(db, "PRAGMA page_size")
    held = 60 * 2 * 8000 // page_size  # the body and the canonical event
    (pages_full,), = db_rows(db, "PRAGMA page_count")
    wait_rows(db, "SELECT count(*) FROM events", [(0,)], timeout=20)
    # The vacuum follows the purge's commit.
    wait_rows(db, "PRAGMA freelist_count", lambda r: r[0][0] < held // 10,
              timeout=5)
    (pages_after,), = db_rows(db, "PRAGMA page_count")
    assert pages_full - pages_after > held * 0.8
    assert e.stop() == 0
