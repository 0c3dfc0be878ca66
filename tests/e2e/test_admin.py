"""The admin REST API through the running engine: who may ask (admin.token,
a tenant's token, none), listings with their filters and pages, one event
or delivery in full, repairs (retry, replay, normalize again), connectors
paused and resumed, and canonical events published with POST /v1/events.

Two tenants, acme and beta, each with a source and a connector, share one
scriptable sink (tests/e2e/sink.py): acme's connector posts to /a, beta's
to /b. What the API answers is compared with what the sink received and
with the rows of the SQLite file."""
import json
import shutil
import threading
import time
import urllib.parse
from datetime import datetime, timedelta, timezone

from conftest import ROOT, db_rows, minimal_config, until
from sink import Answer, Hang, Sink

ADMIN = "admin-token-0123456789abcdef"
ACME = "acme-token-0123456789"
BETA = "beta-token-0123456789"
HOOK = "hook-token"

ONCE = """\
  once:
    retry: { schedule: [0s], max_attempts: 1, jitter: none }
    circuit: { failures: 1000 }
"""
TWICE = """\
  twice:
    retry: { schedule: [0s, 100ms], jitter: none }
    circuit: { failures: 1000 }
"""
# A webhook the alertmanager mapping turns into one event (no route takes
# it).
WARM_UP = (b'{"status": "firing", "alerts": [{"status": "firing", '
           b'"labels": {"alertname": "WarmUp"}}]}')


# ---- helpers -------------------------------------------------------------

def config(sink, a_policy="once", b_policy="once", policies=ONCE,
           routes="", head=""):
    """Two tenants, each with a generic source and a webhook connector on
    the sink; acme also has an alertmanager source (am). Webhooks of a-src
    go to a-out, of b-src to b-out; canonical events of type deploy.* (the
    published ones) go to a-out."""
    return f"""\
server:
  listen: 127.0.0.1:0
storage:
  path: ./hookline.db
outbound: {{ allow_networks: [127.0.0.0/8] }}
log:
  level: debug
{head}admin:
  token: {ADMIN}
tenants:
  acme: {{ token: {ACME} }}
  beta: {{ token: {BETA} }}
sources:
  a-src:
    tenant: acme
    kind: generic
    verify: {{ bearer: {{ tokens: [{HOOK}] }} }}
  am:
    tenant: acme
    kind: alertmanager
    verify: {{ bearer: {{ tokens: [{HOOK}] }} }}
  b-src:
    tenant: beta
    kind: generic
    verify: {{ bearer: {{ tokens: [{HOOK}] }} }}
connectors:
  a-out:
    plugin: webhook
    tenant: acme
    url: "{sink.url('/a')}"
    timeout: 5s
    policy: {a_policy}
  b-out:
    plugin: webhook
    tenant: beta
    url: "{sink.url('/b')}"
    timeout: 5s
    policy: {b_policy}
routes:
  - match: {{ source: a-src }}
    to: [a-out]
  - match: {{ source: b-src }}
    to: [b-out]
  - match: {{ type: "deploy.*" }}
    to: [a-out]
{routes}policies:
{policies}"""


def api(e, method, path, token=ADMIN, body=None, headers=None):
    """(status, parsed JSON answer or raw bytes, headers)."""
    h = {}
    if token:
        h["Authorization"] = f"Bearer {token}"
    if body is not None:
        if not isinstance(body, (bytes, str)):
            body = json.dumps(body)
        if isinstance(body, str):
            body = body.encode()
        h["Content-Type"] = "application/json"
    h.update(headers or {})
    status, hdrs, raw = e.request(method, path, body=body, headers=h)
    try:
        doc = json.loads(raw) if raw else None
    except ValueError:
        doc = raw
    return status, doc, {k.lower(): v for k, v in hdrs.items()}


def get(e, path, token=ADMIN):
    status, doc, _ = api(e, "GET", path, token)
    assert status == 200, (path, status, doc)
    return doc


def q(path, **params):
    """path?params, URL-encoded; None values left out."""
    params = {k: v for k, v in params.items() if v is not None}
    return path + ("?" + urllib.parse.urlencode(params) if params else "")


def error_of(doc):
    return doc["error"]["code"], doc["error"]["message"]


def post_hook(e, source, body):
    status, _, raw = e.request(
        "POST", f"/v1/hooks/{source}",
        body=body if isinstance(body, bytes) else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {HOOK}",
                 "Content-Type": "application/json"})
    assert status == 202, raw
    return json.loads(raw)["id"]


def event_ids(e, path, token=ADMIN):
    return [x["id"] for x in get(e, path, token)["events"]]


def delivery_ids(e, path, token=ADMIN):
    return [x["id"] for x in get(e, path, token)["deliveries"]]


def settled(e, n, token=ADMIN):
    """Wait until the listing shows n webhooks, none still being received
    or with a delivery still on its way; return the listing (newest
    first)."""
    def done():
        evs = get(e, q("/v1/events", limit=500), token)["events"]
        if len(evs) != n:
            return None
        for ev in evs:
            if ev["state"] == "received":
                return None
            if set(ev["deliveries"]) - {"delivered", "failed", "expired"}:
                return None
        return evs
    return until(done, f"{n} webhooks settled")


def counts(e, event_id, token=ADMIN):
    """The listing's deliveries of one webhook: {state: count}."""
    (ev,) = get(e, q("/v1/events", event=event_id), token)["events"]
    return ev["deliveries"]


def delivery_of(e, event_id, token=ADMIN):
    (d,) = get(e, q("/v1/deliveries", event=event_id), token)["deliveries"]
    return d


def title_handler(fail_titles):
    """A sink handler answering 400 to canonical events whose data.title is
    in fail_titles (a set, changeable later) and 200 to the rest."""
    def handle(req):
        try:
            title = req.json()["data"]["title"]
        except (ValueError, KeyError, TypeError):
            return None
        return Answer(400, b"no") if title in fail_titles else None
    return handle


# ---- who may ask ---------------------------------------------------------

def test_tokens_decide_who_may_ask(engine, tmp_path):
    with Sink() as sink:
        e = engine(config(sink))
        status, doc, hdrs = api(e, "GET", "/v1/events", token=None)
        assert status == 401
        assert error_of(doc) == ("unauthorized",
                                 "send Authorization: Bearer <token>")
        assert hdrs["www-authenticate"] == "Bearer"
        status, doc, _ = api(e, "GET", "/v1/events", token="not-a-token")
        assert status == 401
        assert error_of(doc) == ("unauthorized", "the token is neither "
                                 "admin.token nor a tenant's token")
        # The REST API takes the token from the header only, never from
        # the URL, where it would end up in logs.
        status, doc, _ = api(e, "GET", f"/v1/events?access_token={ADMIN}",
                             token=None)
        assert status == 401
        for token in (ADMIN, ACME, BETA):
            assert get(e, "/v1/events", token) == {"events": [],
                                                    "next_cursor": None}
        status, doc, hdrs = api(e, "DELETE", "/v1/events")
        assert status == 405 and hdrs["allow"] == "GET, POST"
        status, doc, hdrs = api(e, "GET", "/v1/replay")
        assert status == 405 and hdrs["allow"] == "POST"
        status, doc, _ = api(e, "GET", "/v1/nothing-here")
        assert status == 404
        assert error_of(doc) == ("not_found", "no route for /v1/nothing-here")
        assert e.stop() == 0


def test_without_any_token_configured_the_api_is_closed(engine):
    e = engine(minimal_config())
    for method, path in (("GET", "/v1/events"), ("GET", "/v1/deliveries"),
                         ("POST", "/v1/replay"), ("GET", "/v1/connectors")):
        status, doc, _ = api(e, method, path, token="anything")
        assert status == 403, (path, doc)
        code, message = error_of(doc)
        assert code == "admin_closed"
        assert "set admin.token" in message
    assert e.stop() == 0


# ---- tenants -------------------------------------------------------------

def test_a_tenant_sees_and_repairs_only_its_own(engine, tmp_path):
    """acme's token: listings hold acme's webhooks and deliveries only;
    every route naming one of beta's (event, delivery, retry, connector
    pause and resume) answers 404 exactly as for an id that does not exist,
    and changes nothing; replay and normalize with it reach acme's only."""
    with Sink() as sink:
        sink.handler = title_handler({"a-fails", "b-fails"})
        e = engine(config(sink))
        a_ok = post_hook(e, "a-src", {"title": "a-ok"})
        a_bad = post_hook(e, "a-src", {"title": "a-fails"})
        b_ok = post_hook(e, "b-src", {"title": "b-ok"})
        b_bad = post_hook(e, "b-src", {"title": "b-fails"})
        a_unparsed = post_hook(e, "am", b'{"alerts": "not a list"}')
        settled(e, 5)
        a_dlv = delivery_of(e, a_bad)["id"]
        b_dlv = delivery_of(e, b_bad)["id"]
        b_ok_dlv = delivery_of(e, b_ok)["id"]

        # Listings.
        assert set(event_ids(e, "/v1/events", ACME)) == {a_ok, a_bad,
                                                         a_unparsed}
        assert set(event_ids(e, "/v1/events", BETA)) == {b_ok, b_bad}
        assert len(event_ids(e, "/v1/events")) == 5
        for ev in get(e, "/v1/events", ACME)["events"]:
            assert ev["tenant"] == "acme"
        dl = get(e, "/v1/deliveries", ACME)["deliveries"]
        assert {d["event_id"] for d in dl} == {a_ok, a_bad}
        assert {d["tenant"] for d in dl} == {"acme"}
        assert {d["connector"] for d in dl} == {"a-out"}
        # Asking for another tenant by name shows nothing, not an error.
        for path in ("/v1/events?tenant=beta", "/v1/deliveries?tenant=beta"):
            doc = get(e, path, ACME)
            assert doc["next_cursor"] is None
            assert doc.get("events", doc.get("deliveries")) == []
        assert event_ids(e, "/v1/events?tenant=acme", ACME) == \
            event_ids(e, "/v1/events", ACME)
        assert set(event_ids(e, "/v1/events?tenant=beta")) == {b_ok, b_bad}
        assert [c["name"] for c in get(e, "/v1/connectors", ACME)
                ["connectors"]] == ["a-out"]
        assert [c["name"] for c in get(e, "/v1/connectors", BETA)
                ["connectors"]] == ["b-out"]
        assert [c["name"] for c in get(e, "/v1/connectors")
                ["connectors"]] == ["a-out", "b-out"]

        # Its own ids are there.
        assert get(e, f"/v1/events/{a_bad}", ACME)["id"] == a_bad
        assert get(e, f"/v1/deliveries/{a_dlv}", ACME)["id"] == a_dlv

        # Another tenant's ids are not: 404, worded as for an unknown id.
        unknown_event = "01ZZZZZZZZZZZZZZZZZZZZZZZZ"
        for token, theirs in ((ACME, b_bad), (BETA, a_bad)):
            status, doc, _ = api(e, "GET", f"/v1/events/{theirs}", token)
            assert (status, error_of(doc)) == (
                404, ("not_found", f"no event '{theirs}'"))
        status, doc, _ = api(e, "GET", f"/v1/events/{unknown_event}", ACME)
        assert (status, error_of(doc)) == (
            404, ("not_found", f"no event '{unknown_event}'"))
        for method, path in (("GET", f"/v1/deliveries/{b_dlv}"),
                             ("POST", f"/v1/deliveries/{b_dlv}/retry"),
                             ("POST", f"/v1/deliveries/{b_ok_dlv}/retry")):
            status, doc, _ = api(e, method, path, ACME)
            assert status == 404, (path, doc)
            assert error_of(doc)[0] == "not_found"
            assert f"'{path.split('/')[3]}'" in error_of(doc)[1]
        status, doc, _ = api(e, "GET", f"/v1/deliveries/{a_dlv}", BETA)
        assert (status, error_of(doc)) == (
            404, ("not_found", f"no delivery '{a_dlv}'"))
        for verb in ("pause", "resume"):
            status, doc, _ = api(e, "POST", f"/v1/connectors/b-out/{verb}",
                                 ACME)
            assert (status, error_of(doc)) == (
                404, ("not_found", "no connector named 'b-out'"))
            status, doc, _ = api(e, "POST",
                                 f"/v1/connectors/no-such/{verb}", ACME)
            assert (status, error_of(doc)) == (
                404, ("not_found", "no connector named 'no-such'"))
        # Nothing of beta's changed.
        b_out = get(e, "/v1/connectors")["connectors"][1]
        assert (b_out["name"], b_out["state"]) == ("b-out", "active")
        assert get(e, f"/v1/deliveries/{b_dlv}")["state"] == "failed"
        assert get(e, f"/v1/deliveries/{b_ok_dlv}")["state"] == "delivered"

        # Repairs with acme's token reach acme's deliveries only.
        sink.handler = None  # everything is answered 200 from now on
        status, doc, _ = api(e, "POST", "/v1/replay", ACME, body={})
        assert (status, doc) == (202, {"replayed": 1})
        status, doc, _ = api(e, "POST", "/v1/replay", ACME,
                             body={"tenant": "beta"})
        assert status in (200, 202) and doc == {"replayed": 0}
        until(lambda: get(e, f"/v1/deliveries/{a_dlv}")["state"]
              == "delivered", "acme's failed delivery replayed")
        status, doc, _ = api(e, "POST", "/v1/normalize", BETA)
        assert (status, doc) == (202, {"requeued": 0})
        assert get(e, f"/v1/events/{a_unparsed}")["state"] == "unparsed"
        time.sleep(0.3)  # a replay of beta's would have been sent by now
        assert get(e, f"/v1/deliveries/{b_dlv}")["state"] == "failed"
        assert [r.path for r in sink.requests].count("/b") == 2
        assert e.stop() == 0


# ---- listings: pages and filters -----------------------------------------

def test_pages_follow_next_cursor(engine, tmp_path):
    with Sink() as sink:
        e = engine(config(sink))
        posted = [post_hook(e, "a-src", {"title": f"page {i}"})
                  for i in range(5)]
        settled(e, 5)
        for listing, key in (("/v1/events", "events"),
                             ("/v1/deliveries", "deliveries")):
            seen, pages, cursor = [], [], None
            while True:
                doc = get(e, q(listing, limit=2, cursor=cursor))
                pages.append(len(doc[key]))
                seen += [x["id"] if key == "events" else x["event_id"]
                         for x in doc[key]]
                cursor = doc["next_cursor"]
                if cursor is None:
                    break
                assert isinstance(cursor, str) and cursor
                assert len(pages) < 10, "pages never end"
            assert pages == [2, 2, 1], listing
            assert len(seen) == len(set(seen)) == 5, listing
            assert seen == posted[::-1], listing  # newest first
        # A filter holds across pages.
        first = get(e, q("/v1/events", limit=2, source="a-src"))
        rest = get(e, q("/v1/events", limit=500, source="a-src",
                        cursor=first["next_cursor"]))
        assert [x["id"] for x in first["events"] + rest["events"]] == \
            posted[::-1]
        assert rest["next_cursor"] is None
        # A full page holding the last one: no next page, or an empty one.
        doc = get(e, q("/v1/events", limit=5))
        assert len(doc["events"]) == 5
        if doc["next_cursor"] is not None:
            assert get(e, q("/v1/events", limit=5,
                            cursor=doc["next_cursor"])) == {
                "events": [], "next_cursor": None}
        for bad, word in (("cursor=abc", "cursor 'abc' is not one this API "
                                         "gave out; pass next_cursor from "
                                         "the previous page"),
                          ("cursor=-3", "cursor '-3' is not one"),
                          ("limit=0", "limit '0' must be a number from 1 "
                                      "to 500"),
                          ("limit=501", "limit '501' must be a number"),
                          ("limit=ten", "limit 'ten' must be a number")):
            status, doc, _ = api(e, "GET", f"/v1/events?{bad}")
            assert status == 400, bad
            code, message = error_of(doc)
            assert code == "invalid_parameter"
            assert message.startswith(word), (bad, message)
        assert e.stop() == 0


def iso_at_offset(iso_z, hours):
    """2026-11-28T07:43:30.848Z as the same instant at UTC+hours."""
    t = datetime.strptime(iso_z, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc)
    local = t.astimezone(timezone(timedelta(hours=hours)))
    return local.strftime("%Y-%m-%dT%H:%M:%S.") + \
        f"{local.microsecond // 1000:03d}" + local.strftime("%z")[:3] + ":" + \
        local.strftime("%z")[3:]


def epoch_ms(iso_z):
    t = datetime.strptime(iso_z, "%Y-%m-%dT%H:%M:%S.%fZ").replace(
        tzinfo=timezone.utc)
    return round(t.timestamp() * 1000)


def test_filters(engine, tmp_path):
    with Sink() as sink:
        sink.handler = title_handler({"a-fails"})
        e = engine(config(sink))
        ids = {}
        for name, source, body in (
                ("fire", "a-src", {"title": "fire", "type": "alert.firing"}),
                ("calm", "a-src", {"title": "calm",
                                   "type": "alert.resolved"}),
                ("fails", "a-src", {"title": "a-fails", "type": "build.done"}),
                ("b-fire", "b-src", {"title": "b-fire",
                                     "type": "alert.firing"}),
                ("unparsed", "am", b'{"alerts": 7}')):
            ids[name] = post_hook(e, source, body)
            time.sleep(0.02)  # received_at apart, for since and until
        listing = settled(e, 5)
        name_of = {v: k for k, v in ids.items()}

        def names(path, key="events"):
            doc = get(e, path)
            assert doc["next_cursor"] is None
            return {name_of[x["id"] if key == "events" else x["event_id"]]
                    for x in doc[key]}

        # Events.
        assert names("/v1/events?state=unparsed") == {"unparsed"}
        assert names("/v1/events?state=failed") == {"fails"}
        assert names("/v1/events?state=delivered") == {"fire", "calm",
                                                       "b-fire"}
        assert names("/v1/events?state=failed,unparsed") == {"fails",
                                                             "unparsed"}
        assert names("/v1/events?state=normalized") == {"fire", "calm",
                                                        "fails", "b-fire"}
        assert names("/v1/events?state=received") == set()
        assert names("/v1/events?state=queued,retrying,sending,expired") \
            == set()
        assert names("/v1/events?connector=b-out") == {"b-fire"}
        assert names("/v1/events?connector=a-out") == {"fire", "calm",
                                                       "fails"}
        assert names("/v1/events?source=am") == {"unparsed"}
        assert names("/v1/events?source=a-src") == {"fire", "calm", "fails"}
        assert names("/v1/events?tenant=beta") == {"b-fire"}
        assert names("/v1/events?type=alert.*") == {"fire", "calm", "b-fire"}
        assert names("/v1/events?type=alert.f*") == {"fire", "b-fire"}
        assert names("/v1/events?type=*.resolved") == {"calm"}
        assert names("/v1/events?type=alert") == set()
        assert names(f"/v1/events?event={ids['calm']}") == {"calm"}
        assert names("/v1/events?source=a-src&type=alert.*&state=delivered") \
            == {"fire", "calm"}
        assert names("/v1/events?tenant=acme&state=delivered") == {"fire",
                                                                   "calm"}
        # Deliveries.
        assert names("/v1/deliveries?state=failed", "deliveries") == {"fails"}
        assert names("/v1/deliveries?state=delivered",
                     "deliveries") == {"fire", "calm", "b-fire"}
        assert names("/v1/deliveries?connector=a-out",
                     "deliveries") == {"fire", "calm", "fails"}
        assert names("/v1/deliveries?source=b-src", "deliveries") == {"b-fire"}
        assert names("/v1/deliveries?type=alert.*",
                     "deliveries") == {"fire", "calm", "b-fire"}
        assert names("/v1/deliveries?tenant=acme&type=alert.*",
                     "deliveries") == {"fire", "calm"}
        assert names(f"/v1/deliveries?event={ids['fire']}",
                     "deliveries") == {"fire"}
        d = delivery_of(e, ids["fails"])
        assert (d["state"], d["last_status"], d["type"]) == ("failed", 400,
                                                             "build.done")

        # since / until, in each accepted form, against received_at.
        received = {name_of[x["id"]]: x["received_at"] for x in listing}
        order = sorted(received, key=lambda n: (received[n], ids[n]))
        assert order == list(ids)
        mid = received["fails"]
        after = {n for n in ids if received[n] >= mid}
        before = set(ids) - after
        assert {"b-fire", "unparsed"} <= after and {"fire", "calm"} <= before
        for form in (mid, iso_at_offset(mid, 1), iso_at_offset(mid, -5),
                     str(epoch_ms(mid))):
            assert names(q("/v1/events", since=form)) == after, form
            assert names(q("/v1/events", until=form)) == before, form
            assert names(q("/v1/deliveries", since=form),
                         "deliveries") == after - {"unparsed"}, form
            assert names(q("/v1/deliveries", until=form),
                         "deliveries") == before, form
        assert names(q("/v1/events", since=mid, until=received["b-fire"])) \
            == {n for n in after if received[n] < received["b-fire"]}
        assert names("/v1/events?since=1h") == set(ids)
        assert names("/v1/events?since=2d&until=90m") == set()
        assert names("/v1/events?until=1h") == set()
        future = datetime.now(timezone.utc) + timedelta(hours=2)
        assert names(q("/v1/events", since=future.strftime(
            "%Y-%m-%dT%H:%M:%SZ"))) == set()

        # What is wrong is named.
        for path, message in (
                ("/v1/events?foo=1", "unknown parameter 'foo'; use tenant, "
                 "source, type, state, connector, event, since, until, "
                 "cursor, limit"),
                ("/v1/deliveries?state=failed&bogus",
                 "unknown parameter 'bogus'; use tenant, source, type, "
                 "state, connector, event, since, until, cursor, limit"),
                ("/v1/events?since=yesterday", "since 'yesterday' is not a "
                 "time: use RFC 3339 (2026-11-28T07:00:00Z), a duration ago "
                 "(15m, 2h, 7d) or milliseconds since the epoch"),
                ("/v1/deliveries?until=2026-11-28", "until '2026-11-28' is "
                 "not a time: use RFC 3339"),
                ("/v1/events?until=2026-11-28T25:00:00Z",
                 "until '2026-11-28T25:00:00Z' is not a time"),
                ("/v1/events?state=failed,lost", "state 'lost' is not one of "
                 "queued, sending, retrying, delivered, failed, expired, "
                 "received, normalized, unparsed")):
            status, doc, _ = api(e, "GET", path)
            assert status == 400, path
            code, got = error_of(doc)
            assert code == "invalid_parameter"
            assert got.startswith(message), (path, got)
        assert e.stop() == 0


# ---- one event, one delivery ---------------------------------------------

def test_one_event_and_one_delivery_in_full(engine, tmp_path):
    with Sink() as sink:
        sink.script([Answer(500, b"down for a moment")])
        e = engine(config(sink, a_policy="twice", policies=ONCE + TWICE))
        body = {"title": "disk full", "type": "alert.firing",
                "severity": "critical", "labels": {"host": "db-1"}}
        status, _, raw = e.request(
            "POST", "/v1/hooks/a-src", body=json.dumps(body).encode(),
            headers={"Authorization": f"Bearer {HOOK}",
                     "Content-Type": "application/json",
                     "X-Request-ID": "corr-42"})
        assert status == 202
        event_id = json.loads(raw)["id"]
        (ev,) = settled(e, 1)
        assert ev["id"] == event_id
        assert (ev["tenant"], ev["source"], ev["state"], ev["reason"]) == (
            "acme", "a-src", "normalized", None)
        assert ev["correlation_id"] == "corr-42"
        assert ev["content_type"] == "application/json"
        assert ev["size"] == len(json.dumps(body))
        assert ev["events"] == [{"id": event_id, "type": "alert.firing",
                                 "severity": "critical", "route": "route-1"}]
        assert ev["deliveries"] == {"delivered": 1}
        full = get(e, f"/v1/events/{event_id}")
        for k, v in ev.items():
            if k != "deliveries":
                assert full[k] == v, k
        assert full["body"] == body
        assert full["headers"]["content-type"] == "application/json"
        assert "authorization" not in {h.lower() for h in full["headers"]}
        (canon,) = full["canonical"]
        assert canon["id"] == event_id
        assert canon["source"] == "/acme/a-src"
        assert canon["data"]["title"] == "disk full"
        assert canon["data"]["labels"] == {"host": "db-1"}
        assert canon["data"]["raw"] == body  # put back from the body
        assert canon == sink.requests[-1].json()
        (dlv,) = full["deliveries"]
        assert (dlv["event_id"], dlv["canonical_id"], dlv["connector"],
                dlv["route"], dlv["type"], dlv["state"], dlv["attempts"],
                dlv["last_status"], dlv["next_attempt_at"]) == (
            event_id, event_id, "a-out", "route-1", "alert.firing",
            "delivered", 2, 200, None)
        listed = get(e, "/v1/deliveries")["deliveries"]
        assert listed == [dlv]
        one = get(e, f"/v1/deliveries/{dlv['id']}")
        assert {k: v for k, v in one.items() if k != "attempts"} == \
            {k: v for k, v in dlv.items() if k != "attempts"}
        a1, a2 = one["attempts"]
        assert (a1["attempt"], a1["status"], a1["outcome"],
                a1["error_class"], a1["response"]) == (
            1, 500, "retry", "http_5xx", "down for a moment")
        assert (a2["attempt"], a2["status"], a2["outcome"],
                a2["response"]) == (2, 200, "delivered", '{"ok":true}')
        for a in (a1, a2):
            assert a["started_at"].endswith("Z")
            assert isinstance(a["duration_ms"], int)
        # The same as the store holds.
        db = tmp_path / "hookline.db"
        assert db_rows(db, "SELECT attempt, status, outcome FROM attempts "
                           "ORDER BY seq") == [(1, 500, "retry"),
                                               (2, 200, "delivered")]
        status, doc, _ = api(e, "GET", "/v1/deliveries/nope")
        assert (status, error_of(doc)) == (404, ("not_found",
                                                 "no delivery 'nope'"))
        status, doc, _ = api(e, "POST", f"/v1/deliveries/{dlv['id']}/frob")
        assert status == 404
        assert e.stop() == 0


# ---- retry, replay, normalize again --------------------------------------

def test_retry_of_a_failed_delivery_redelivers(engine, tmp_path):
    """Failed after its two attempts (500, 500), retried by hand: a fresh
    round of its policy (500 once more, then 200), attempt numbers going
    on, the same Idempotency-Key every time."""
    with Sink() as sink:
        sink.script_on("/a", [500, 500, 500])
        e = engine(config(sink, a_policy="twice", policies=ONCE + TWICE))
        event_id = post_hook(e, "a-src", {"title": "flaky"})
        settled(e, 1)
        d = delivery_of(e, event_id)
        assert (d["state"], d["attempts"], d["last_status"]) == ("failed", 2,
                                                                 500)
        assert len(sink.requests) == 2
        status, doc, _ = api(e, "POST", f"/v1/deliveries/{d['id']}/retry",
                             ACME)
        assert (status, doc) == (202, {"id": d["id"], "state": "queued",
                                       "was": "failed"})
        reqs = sink.wait_for(4)
        assert [r.answer_status for r in reqs] == [500, 500, 500, 200]
        assert {r.headers["idempotency-key"] for r in reqs} == {d["id"]}
        done = until(lambda: (x := get(e, f"/v1/deliveries/{d['id']}"))
                     ["state"] == "delivered" and x, "delivered")
        assert [(a["attempt"], a["status"], a["outcome"])
                for a in done["attempts"]] == [
            (1, 500, "retry"), (2, 500, "failed"), (3, 500, "retry"),
            (4, 200, "delivered")]
        assert delivery_of(e, event_id)["attempts"] == 4
        # A delivered one may be sent again too.
        status, doc, _ = api(e, "POST", f"/v1/deliveries/{d['id']}/retry")
        assert (status, doc["was"]) == (202, "delivered")
        assert sink.wait_for(5)[-1].headers["idempotency-key"] == d["id"]
        until(lambda: delivery_of(e, event_id)["attempts"] == 5
              and delivery_of(e, event_id)["state"] == "delivered",
              "sent again")
        for method in ("GET", "PUT"):
            status, _, hdrs = api(e, method,
                                  f"/v1/deliveries/{d['id']}/retry")
            assert status == 405 and hdrs["allow"] == "POST"
        unknown = "01ZZZZZZZZZZZZZZZZZZZZZZZZ"
        status, doc, _ = api(e, "POST", f"/v1/deliveries/{unknown}/retry")
        assert (status, error_of(doc)) == (
            404, ("not_found", f"no delivery '{unknown}'"))
        assert e.stop() == 0


def test_retry_while_it_is_being_sent_is_409(engine, tmp_path):
    with Sink() as sink:
        sink.respond_on("/a", Hang())
        e = engine(config(sink, a_policy="later", policies=ONCE + """\
  later:
    retry: { schedule: [0s, 1h], jitter: none }
"""))
        event_id = post_hook(e, "a-src", {"title": "stuck"})
        sink.wait_for(1)
        d = until(lambda: get(e, "/v1/deliveries?state=sending")
                  ["deliveries"], "sending")[0]
        assert d["event_id"] == event_id
        conn = until(lambda: get(e, "/v1/connectors")["connectors"][0]
                     ["queue"]["sending"] == 1, "counted as sending")
        assert conn
        status, doc, _ = api(e, "POST", f"/v1/deliveries/{d['id']}/retry")
        assert status == 409
        assert error_of(doc)[0] == "in_flight"
        # The attempt times out (5 s): retrying, an hour from now; a retry
        # by hand sends it at once.
        d = until(lambda: (x := delivery_of(e, event_id))["state"]
                  == "retrying" and x, "timed out", timeout=30)
        assert d["next_attempt_at"] is not None
        status, doc, _ = api(e, "POST", f"/v1/deliveries/{d['id']}/retry")
        assert (status, doc["was"]) == (202, "retrying")
        sink.wait_for(2)
        sink.close()  # ends the hung requests
        assert e.stop() == 0


def test_replay_after_an_outage_resends_all_with_their_keys(engine, tmp_path):
    """Five deliveries fail while the receiver is down; a replay of the
    failed ones sends each again with the Idempotency-Key of its first
    attempt, never more than the policy's max_in_flight at a time."""
    state = {"down": True, "now": 0, "most": 0}
    lock = threading.Lock()

    def handle(req):
        if req.path != "/a":
            return None
        if state["down"]:
            return Answer(503, b"maintenance")
        with lock:
            state["now"] += 1
            state["most"] = max(state["most"], state["now"])
        time.sleep(0.15)
        with lock:
            state["now"] -= 1
        return Answer(200, b"ok")

    with Sink() as sink:
        sink.handler = handle
        e = engine(config(sink, a_policy="narrow", policies=ONCE + """\
  narrow:
    retry: { schedule: [0s], max_attempts: 1, jitter: none }
    circuit: { failures: 1000 }
    max_in_flight: 2
"""))
        posted = [post_hook(e, "a-src", {"title": f"lost {i}"})
                  for i in range(5)]
        delivered = post_hook(e, "b-src", {"title": "b was fine"})
        settled(e, 6)
        first = {r.headers["idempotency-key"]: r for r in sink.wait_for(6)
                 if r.path == "/a"}
        failed = get(e, "/v1/deliveries?state=failed")["deliveries"]
        assert {d["event_id"] for d in failed} == set(posted)
        assert set(first) == {d["id"] for d in failed}

        state["down"] = False
        for bad in ({"state": "queued"}, {"state": ["failed", "sending"]},
                    {"state": "unparsed"}):
            status, doc, _ = api(e, "POST", "/v1/replay", body=bad)
            assert (status, error_of(doc)) == (400, (
                "invalid_parameter", "replay takes deliveries in states "
                "failed, expired, delivered or retrying")), bad
        status, doc, _ = api(e, "POST", "/v1/replay", body={"colour": "red"})
        assert status == 400 and "unknown parameter 'colour'" in \
            error_of(doc)[1]
        status, doc, _ = api(e, "POST", "/v1/replay", body="[1, 2")
        assert (status, error_of(doc)[0]) == (400, "invalid_json")
        status, doc, _ = api(e, "POST", "/v1/replay",
                             body={"connector": "a-out"})
        assert (status, doc) == (202, {"replayed": 5})
        again = [r for r in sink.wait_for(11, timeout=30)
                 if r.path == "/a"][5:]
        keys = [r.headers["idempotency-key"] for r in again]
        assert sorted(keys) == sorted(first)
        for r in again:
            assert r.json() == first[r.headers["idempotency-key"]].json()
        until(lambda: len(get(e, "/v1/deliveries?state=delivered")
                          ["deliveries"]) == 6, "all delivered")
        assert state["most"] <= 2, state
        for d in failed:
            attempts = get(e, f"/v1/deliveries/{d['id']}")["attempts"]
            assert [(a["attempt"], a["status"]) for a in attempts] == [
                (1, 503), (2, 200)]
        # Nothing failed is left: a second replay finds nothing.
        status, doc, _ = api(e, "POST", "/v1/replay")
        assert (status, doc) == (202, {"replayed": 0})
        # Delivered ones are replayed when asked for, by query too.
        status, doc, _ = api(e, "POST", q("/v1/replay", state="delivered",
                                          event=delivered))
        assert (status, doc) == (202, {"replayed": 1})
        assert [r.path for r in sink.wait_for(12)].count("/b") == 2
        assert e.stop() == 0


def test_normalize_again_after_the_mapping_is_fixed(engine, tmp_path):
    """A mapping that breaks makes a webhook unparsed. POST /v1/normalize
    with nothing changed tries it again (and it is unparsed again); after
    the mapping is fixed and the engine started again (a start does not
    retry unparsed webhooks), POST /v1/normalize turns it into a canonical
    event that is delivered."""
    schemas = tmp_path / "schemas"
    shutil.copytree(ROOT / "schemas", schemas)
    generic = schemas / "sources" / "generic.yaml"
    good = generic.read_text()
    assert "default: { value: info }" in good
    generic.write_text(good.replace("default: { value: info }",
                                    "default: { value: catastrophic }"))
    head = "schemas_path: ./schemas\n"
    with Sink() as sink:
        e = engine(config(sink, head=head))
        # Not the store's first webhook: see the test after this one.
        warm = post_hook(e, "am", WARM_UP)
        event_id = post_hook(e, "a-src", {"title": "no severity"})
        b_id = post_hook(e, "b-src", {"title": "beta's, no severity"})
        settled(e, 3)
        assert get(e, f"/v1/events/{warm}")["state"] == "normalized"
        ev = get(e, f"/v1/events/{event_id}")
        assert ev["state"] == "unparsed"
        assert "severity 'catastrophic' is not one of" in ev["reason"]
        assert ev["canonical"] == [] and ev["deliveries"] == []
        assert set(event_ids(e, "/v1/events?state=unparsed")) == {event_id,
                                                                  b_id}
        marker = "event unparsed; its raw body is kept"
        assert e.log().count(marker) == 2
        status, doc, _ = api(e, "POST", "/v1/normalize", ACME,
                             body={"source": "b-src"})
        assert (status, doc) == (202, {"requeued": 0})
        status, doc, _ = api(e, "POST", "/v1/normalize", ACME)
        assert (status, doc) == (202, {"requeued": 1})
        until(lambda: e.log().count(marker) == 3, "normalized once more")
        assert e.log().count(f"id={event_id}") >= 2
        until(lambda: get(e, f"/v1/events/{event_id}")["state"] == "unparsed",
              "unparsed again")
        status, doc, _ = api(e, "POST", "/v1/normalize",
                             body={"sourc": "a-src"})
        assert status == 400 and "unknown parameter 'sourc'" in \
            error_of(doc)[1]
        status, doc, _ = api(e, "POST", "/v1/normalize?since=whenever")
        assert status == 400 and "since 'whenever' is not a time" in \
            error_of(doc)[1]
        status, doc, _ = api(e, "POST", "/v1/normalize",
                             body={"connector": "a-out"})
        assert status == 400 and "normalize takes tenant, source, event" in \
            error_of(doc)[1]
        assert e.stop() == 0

        generic.write_text(good)
        e = engine(config(sink, head=head), name="again.yaml")
        # A fresh webhook is normalized with the fixed mapping; the old one
        # stays as it was until asked for.
        fresh = post_hook(e, "a-src", {"title": "fresh"})
        until(lambda: counts(e, fresh)
              == {"delivered": 1}, "fresh delivered")
        assert set(event_ids(e, "/v1/events?state=unparsed")) == {event_id,
                                                                  b_id}
        status, doc, _ = api(e, "POST", "/v1/normalize",
                             body={"event": event_id})
        assert (status, doc) == (202, {"requeued": 1})
        until(lambda: counts(e, event_id) == {"delivered": 1}, "delivered")
        ev = get(e, f"/v1/events/{event_id}")
        assert (ev["state"], ev["reason"]) == ("normalized", None)
        (canon,) = ev["canonical"]
        assert (canon["id"], canon["severity"], canon["data"]["title"]) == (
            event_id, "info", "no severity")
        titles = [r.json()["data"]["title"] for r in sink.wait_for(2)]
        assert titles == ["fresh", "no severity"]
        assert get(e, f"/v1/events/{b_id}")["state"] == "unparsed"
        status, doc, _ = api(e, "POST", "/v1/normalize", BETA,
                             body={"since": "1h"})
        assert (status, doc) == (202, {"requeued": 1})
        until(lambda: get(e, f"/v1/events/{b_id}")["state"] == "normalized",
              "beta's normalized")
        assert e.stop() == 0


def test_normalize_again_of_the_first_webhook(engine, tmp_path):
    schemas = tmp_path / "schemas"
    shutil.copytree(ROOT / "schemas", schemas)
    generic = schemas / "sources" / "generic.yaml"
    generic.write_text(generic.read_text().replace(
        "default: { value: info }", "default: { value: catastrophic }"))
    with Sink() as sink:
        e = engine(config(sink, head="schemas_path: ./schemas\n"))
        event_id = post_hook(e, "a-src", {"title": "first of all"})
        settled(e, 1)
        assert get(e, f"/v1/events/{event_id}")["state"] == "unparsed"
        status, doc, _ = api(e, "POST", "/v1/normalize")
        assert (status, doc) == (202, {"requeued": 1})
        marker = "event unparsed; its raw body is kept"
        until(lambda: e.log().count(marker) == 2, "normalized once more",
              timeout=10)
        assert e.stop() == 0


# ---- connectors ----------------------------------------------------------

def test_pause_keeps_deliveries_queued_and_resume_sends_them(engine,
                                                             tmp_path):
    with Sink() as sink:
        e = engine(config(sink))
        (a, b) = get(e, "/v1/connectors")["connectors"]
        assert a == {"name": "a-out", "plugin": "webhook", "tenant": "acme",
                     "policy": "once", "state": "active", "circuit": "closed",
                     "queue": {"queued": 0, "retrying": 0, "sending": 0}}
        assert (b["name"], b["tenant"], b["state"]) == ("b-out", "beta",
                                                        "active")
        status, doc, _ = api(e, "POST", "/v1/connectors/a-out/pause", BETA)
        assert status == 404
        status, doc, _ = api(e, "POST", "/v1/connectors/a-out/pause", ACME)
        assert (status, doc) == (200, {"connector": "a-out",
                                       "state": "paused"})
        status, doc, _ = api(e, "GET", "/v1/connectors/a-out/pause", ACME)
        assert status == 405
        status, doc, _ = api(e, "POST", "/v1/connectors/a-out/stop", ACME)
        assert status == 404 and "use /v1/connectors/NAME/pause" in \
            error_of(doc)[1]
        held = [post_hook(e, "a-src", {"title": f"held {i}"})
                for i in range(3)]
        other = post_hook(e, "b-src", {"title": "not held"})
        # Beta's connector goes on while acme's is paused.
        assert sink.wait_for(1)[0].path == "/b"
        until(lambda: get(e, "/v1/connectors", ACME)["connectors"][0]
              ["queue"]["queued"] == 3, "three queued")
        (a,) = get(e, "/v1/connectors", ACME)["connectors"]
        assert (a["state"], a["queue"]) == ("paused", {
            "queued": 3, "retrying": 0, "sending": 0})
        queued = get(e, "/v1/deliveries?state=queued&connector=a-out",
                     ACME)["deliveries"]
        assert {d["event_id"] for d in queued} == set(held)
        assert all(d["attempts"] == 0 and d["next_attempt_at"]
                   for d in queued)
        assert set(event_ids(e, "/v1/events?state=queued")) == set(held)
        time.sleep(0.5)  # a paused connector would have sent by now
        assert [r.path for r in sink.requests] == ["/b"]
        assert delivery_of(e, other)["state"] == "delivered"

        status, doc, _ = api(e, "POST", "/v1/connectors/a-out/resume")
        assert (status, doc) == (200, {"connector": "a-out",
                                       "state": "active"})
        reqs = sink.wait_for(3, path="/a")
        assert sorted(r.json()["data"]["title"] for r in reqs) == [
            "held 0", "held 1", "held 2"]
        until(lambda: len(get(e, "/v1/deliveries?state=delivered")
                          ["deliveries"]) == 4, "all delivered")
        for d in queued:
            attempts = get(e, f"/v1/deliveries/{d['id']}")["attempts"]
            assert [(x["attempt"], x["outcome"]) for x in attempts] == [
                (1, "delivered")]
        (a,) = get(e, "/v1/connectors", ACME)["connectors"]
        assert (a["state"], a["queue"]) == ("active", {
            "queued": 0, "retrying": 0, "sending": 0})
        assert e.stop() == 0


# ---- POST /v1/events -----------------------------------------------------

def test_publish_checks_the_event(engine, tmp_path):
    with Sink() as sink:
        e = engine(config(sink))

        def problems(body, token=ACME):
            status, doc, _ = api(e, "POST", "/v1/events", token, body=body)
            assert status == 400, (body, doc)
            return error_of(doc)

        code, why = problems({"type": "Bad Type", "id": "x",
                              "severity": "huge", "time": "noon", "zzz": 1,
                              "tenant": "beta", "source": "/acme/mine",
                              "data": {"labels": {"n": 1}, "status": "Up",
                                       "extra": True}})
        assert code == "invalid_event"
        assert why == "; ".join([
            "zzz: not an attribute of event.v1.json",
            "id: is assigned by hookline; to publish once only, send an "
            "Idempotency-Key header",
            "tenant: must be 'acme', the tenant of the token",
            "source: is set by hookline to '/acme/api'; leave it out",
            "type: 'Bad Type' must be lowercase words joined by dots, like "
            "alert.firing",
            "time: 'noon' is not an RFC 3339 time such as "
            "2026-11-28T07:30:16Z",
            "severity: 'huge' is not one of critical, error, warning, info",
            "data.extra: not an attribute of event.v1.json",
            "data.title: required",
            "data.status: 'Up' must match ^[a-z_]+$",
            "data.labels.n: must be a string"])
        assert problems({}) == ("invalid_event",
                                "type: required; data: required")
        assert problems({"type": "x.y", "data": []}) == (
            "invalid_event", "data: must be an object")
        assert problems({"type": "x.y", "data": {"title": ""}}) == (
            "invalid_event", "data.title: must be a non-empty string")
        assert problems({"type": "x.", "data": {"title": "t"},
                         "specversion": "0.3"}) == (
            "invalid_event", "specversion: is set by hookline to '1.0'; "
            "leave it out; type: 'x.' must be lowercase words joined by "
            "dots, like alert.firing")
        assert problems([1]) == ("invalid_event", "body: must be a JSON "
                                 "object: one canonical event")
        code, why = problems("{not json")
        assert code == "invalid_json" and why.startswith("the body is not "
                                                         "JSON")
        # With the admin token the tenant must be named.
        code, why = problems({"type": "x.y", "data": {"title": "t"}}, ADMIN)
        assert code == "invalid_event" and why.startswith("tenant: ")
        code, _ = problems({"type": "x.y", "data": {"title": "t"},
                            "tenant": "nobody"}, ADMIN)
        assert code == "invalid_event"
        status, _, _ = api(e, "POST", "/v1/events", None,
                           body={"type": "x.y", "data": {"title": "t"}})
        assert status == 401
        # Nothing of it was stored.
        assert get(e, "/v1/events")["events"] == []
        assert db_rows(tmp_path / "hookline.db",
                       "SELECT count(*) FROM events") == [(0,)]
        assert e.stop() == 0


def test_published_event_is_completed_stored_and_delivered(engine, tmp_path):
    with Sink() as sink:
        e = engine(config(sink))
        data = {"title": "deployed v2", "text": "all green",
                "url": "https://ci.example/42"}
        status, doc, _ = api(e, "POST", "/v1/events", ACME,
                             body={"type": "deploy.finished", "data": data,
                                   "subject": "web"},
                             headers={"Idempotency-Key": "deploy-42",
                                      "X-Request-ID": "req-7"})
        assert status == 202 and doc["status"] == "queued"
        event_id = doc["id"]
        # The same key again: the same event, not a second one.
        status, doc, _ = api(e, "POST", "/v1/events", ACME,
                             body={"type": "deploy.finished", "data": data},
                             headers={"Idempotency-Key": "deploy-42"})
        assert (status, doc) == (200, {"id": event_id,
                                       "status": "duplicate"})
        # Keys are per tenant: beta's deploy-42 is its own event.
        status, doc, _ = api(e, "POST", "/v1/events", BETA,
                             body={"type": "other.thing",
                                   "data": {"title": "beta's"}},
                             headers={"Idempotency-Key": "deploy-42"})
        assert status == 202 and doc["id"] != event_id
        beta_id = doc["id"]
        # The admin token publishes for a tenant it names.
        status, doc, _ = api(e, "POST", "/v1/events", ADMIN,
                             body={"type": "deploy.started", "tenant": "acme",
                                   "severity": "warning",
                                   "time": "2026-11-28T07:30:16+01:00",
                                   "data": {"title": "by the admin",
                                            "labels": {"env": "prod"}}})
        assert status == 202
        admin_id = doc["id"]

        reqs = sink.wait_for(2, path="/a")
        got = {r.json()["id"]: r.json() for r in reqs}
        assert set(got) == {event_id, admin_id}
        ev = got[event_id]
        t = ev.pop("time")
        assert datetime.strptime(t, "%Y-%m-%dT%H:%M:%S.%fZ")
        assert ev == {"specversion": "1.0", "id": event_id,
                      "source": "/acme/api", "type": "deploy.finished",
                      "subject": "web", "datacontenttype": "application/json",
                      "tenant": "acme", "severity": "info",
                      "correlationid": "req-7",
                      "data": {**data, "labels": {},
                               "raw": {**data, "labels": {}}}}
        ev = got[admin_id]
        assert (ev["tenant"], ev["severity"], ev["time"]) == (
            "acme", "warning", "2026-11-28T07:30:16+01:00")
        assert ev["data"]["labels"] == {"env": "prod"}

        # Stored as a webhook of source api, and listed like any other.
        db = tmp_path / "hookline.db"
        rows = db_rows(db, "SELECT id, tenant, source, state FROM events "
                           "ORDER BY seq")
        assert rows == [(event_id, "acme", "api", "normalized"),
                        (beta_id, "beta", "api", "normalized"),
                        (admin_id, "acme", "api", "normalized")]
        assert set(event_ids(e, "/v1/events?source=api", ACME)) == {
            event_id, admin_id}
        one = get(e, f"/v1/events/{event_id}", ACME)
        assert one["source"] == "api" and one["correlation_id"] == "req-7"
        (canon,) = one["canonical"]
        assert canon["id"] == event_id and canon["source"] == "/acme/api"
        until(lambda: counts(e, event_id)
              == {"delivered": 1}, "delivered")
        status, _, _ = api(e, "GET", f"/v1/events/{event_id}", BETA)
        assert status == 404
        assert e.stop() == 0


def test_a_route_on_source_api_delivers_published_events(engine, tmp_path):
    with Sink() as sink:
        e = engine(config(sink, routes="""\
  - match: { source: api }
    to: [b-out]
"""))
        status, doc, _ = api(e, "POST", "/v1/events", BETA,
                             body={"type": "note.added",
                                   "data": {"title": "through the api"}})
        assert status == 202
        req = sink.wait_for(1, path="/b")[0]
        assert req.json()["id"] == doc["id"]
        assert req.json()["source"] == "/beta/api"
        until(lambda: counts(e, doc["id"])
              == {"delivered": 1}, "delivered")
        assert e.stop() == 0
