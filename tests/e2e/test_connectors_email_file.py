"""The email and file connectors.

email: through the running engine to a real SMTP server on loopback
(aiosmtpd, tests/e2e/mock_smtp.py): the envelope, the message as Python's
email package reads it, the same Message-ID on a retry, reply codes and
transport errors classified, AUTH, STARTTLS and smtps with the test CA.
Golden renders (`hookline render`) of every canonical event in
tests/data/golden/*.expected.json against tests/data/connectors/email/ and
file/; HOOKLINE_REGEN_GOLDEN=1 rewrites them (inspect the diff).

file: JSON lines appended, size-based rotation, a template line, the
policy's redaction, and `hookline check` refusing a folder that is missing.
"""
import email
import email.policy
import email.utils
import json
import os
import re
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime, timezone

import pytest

from conftest import ROOT, run_cli, db_rows, wait_rows
from mock_smtp import CA, MockSMTP

TOKEN = "mail-token"
GH_TOKEN = "ghp_" + "A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8"
GOLDEN = ROOT / "tests" / "data" / "golden"
EXPECTED_EMAIL = ROOT / "tests" / "data" / "connectors" / "email"
EXPECTED_FILE = ROOT / "tests" / "data" / "connectors" / "file"
REGEN = os.environ.get("HOOKLINE_REGEN_GOLDEN") == "1"
DELIVERY_ID = "01J0DELIVERY00000000000001"
NOW_MS = 1790000000000

# ---- helpers ---------------------------------------------------------------


def post(e, body, source="gen", token=TOKEN):
    status, _, raw = e.request(
        "POST", f"/v1/hooks/{source}", body=json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {token}",
                 "Content-Type": "application/json"})
    assert status == 202, raw
    return json.loads(raw)["id"]


def config(connectors, routes="  - to: [out]\n", policies=""):
    return f"""\
server:
  listen: 127.0.0.1:0
storage:
  path: ./hookline.db
outbound: {{ allow_networks: [127.0.0.0/8] }}
log:
  level: debug
sources:
  gen:
    kind: generic
    verify: {{ bearer: {{ tokens: [{TOKEN}] }} }}
connectors:
{connectors}
routes:
{routes}
{policies}"""


# FAST retries at once; ONCE leaves the delivery waiting an hour after its
# first attempt, so a test sees it `retrying` without racing the retry.
FAST = "policies:\n  fast:\n    retry: { schedule: [0s, 100ms, 100ms], jitter: 0 }\n"
ONCE = "policies:\n  once:\n    retry: { schedule: [0s, 1h], jitter: 0 }\n"


def mail_connector(url, more="", policy=None, name="out"):
    """An email connector; more's own from or to replaces the default."""
    def has(key):
        return re.search(rf"^    {key}:", more, re.M)
    return (f"  {name}:\n    plugin: email\n    url: {url}\n    timeout: 5s\n"
            + ("" if has("from") else
               "    from: \"Hookline Alerts <alerts@example.com>\"\n")
            + ("" if has("to") else "    to: [ops@example.com]\n")
            + (f"    policy: {policy}\n" if policy else "") + more)


def parse(raw):
    return email.message_from_bytes(raw, policy=email.policy.default)


def check_lines(raw):
    """SMTP's limits: CRLF line ends only, no line over 998 octets; and
    this connector's own: headers folded to 78, body lines at most 76."""
    assert raw.endswith(b"\r\n")
    lines = raw[:-2].split(b"\r\n")
    for line in lines:
        assert b"\r" not in line and b"\n" not in line, line
        assert len(line) <= 998, line
        assert line != b".", "a lone dot line"
    head, _, body = raw.partition(b"\r\n\r\n")
    for line in head.split(b"\r\n"):
        assert len(line) <= 78, line
    for line in body.split(b"\r\n"):
        assert len(line) <= 76, line


def delivery_id(db):
    wait_rows(db, "SELECT count(*) FROM deliveries", [(1,)])
    (dlv_id,), = db_rows(db, "SELECT id FROM deliveries")
    return dlv_id


# ---- email through the engine ----------------------------------------------

TITLE = "Festplatte fast voll auf db-1 — Ünïcødé ✓ and a long tail to fold"


def test_message_arrives_with_envelope_headers_and_both_parts(engine, tmp_path):
    with MockSMTP() as smtp:
        e = engine(config(mail_connector(smtp.url, """\
    starttls: false
    to: [ops@example.com, "Ön Call <oncall@example.com>"]
    cc: ["Lead, Team <lead@example.com>"]
    bcc: [audit@example.com]
    reply_to: noc@example.com
""")))
        before = datetime.now(timezone.utc).replace(microsecond=0)
        post(e, {"title": TITLE, "severity": "critical",
                 "text": "93% used on /var <b>now</b>\nsecond line",
                 "status": "firing", "url": "https://grafana.example.com/d/1?a=1&b=2",
                 "labels": {"host": "db-1", "team": "storage"}})
        got, = smtp.wait_for(1)
        db = tmp_path / "hookline.db"
        dlv_id = delivery_id(db)
        wait_rows(db, "SELECT state, attempts, last_status FROM deliveries",
                  [("delivered", 1, 250)])
        assert e.stop() == 0

    assert got.mail_from == "alerts@example.com"
    assert got.rcpt_tos == ["ops@example.com", "oncall@example.com",
                            "lead@example.com", "audit@example.com"]
    assert not got.tls
    check_lines(got.content)
    msg = parse(got.content)
    assert msg["Subject"] == f"[critical] {TITLE}"
    assert b"=?UTF-8?B?" in got.content  # encoded, not raw UTF-8
    assert msg["From"].addresses[0].addr_spec == "alerts@example.com"
    assert msg["From"].addresses[0].display_name == "Hookline Alerts"
    to = [(a.display_name, a.addr_spec) for a in msg["To"].addresses]
    assert to == [("", "ops@example.com"), ("Ön Call", "oncall@example.com")]
    assert [(a.display_name, a.addr_spec) for a in msg["Cc"].addresses] == \
        [("Lead, Team", "lead@example.com")]
    assert msg["Bcc"] is None and b"audit@" not in got.content
    assert msg["Reply-To"].addresses[0].addr_spec == "noc@example.com"
    assert msg["Message-ID"] == f"<{dlv_id}@hookline>"
    assert msg["MIME-Version"] == "1.0"
    sent = email.utils.parsedate_to_datetime(msg["Date"])
    assert str(msg["Date"]).endswith("+0000")
    assert abs((sent - before).total_seconds()) < 60
    assert msg.get_content_type() == "multipart/alternative"
    text = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert text.get_content_charset() == "utf-8"
    assert html.get_content_charset() == "utf-8"
    # The parser keeps the CRLF line ends of the wire.
    t = text.get_content().replace("\r\n", "\n")
    assert TITLE in t
    assert "93% used on /var <b>now</b>\nsecond line" in t
    for line in ("Severity: critical", "Source:   /default/gen",
                 "Status:   firing", "  host: db-1", "  team: storage",
                 "Link: https://grafana.example.com/d/1?a=1&b=2"):
        assert line in t, (line, t)
    h = html.get_content().replace("\r\n", "\n")
    assert "93% used on /var &lt;b&gt;now&lt;/b&gt;" in h
    assert "Ünïcødé ✓" in h
    assert 'href="https://grafana.example.com/d/1?a=1&amp;b=2"' in h
    assert "<code>team</code>: storage" in h


def test_retry_resends_the_same_message_id(engine, tmp_path):
    with MockSMTP() as smtp:
        smtp.script("DATA", "451 4.3.0 Try again later")
        e = engine(config(mail_connector(smtp.url, "    starttls: false\n",
                                         policy="fast"), policies=FAST))
        post(e, {"title": "disk full"})
        first, second = smtp.wait_for(2, seen=True)
        db = tmp_path / "hookline.db"
        dlv_id = delivery_id(db)
        wait_rows(db, "SELECT state, attempts FROM deliveries", [("delivered", 2)])
        rows = db_rows(db, "SELECT attempt, status, outcome FROM attempts ORDER BY seq")
        assert e.stop() == 0
    assert rows == [(1, 451, "retry"), (2, 250, "delivered")]
    assert first.reply.startswith("451") and second.reply.startswith("250")
    ids = {parse(m.content)["Message-ID"] for m in (first, second)}
    assert ids == {f"<{dlv_id}@hookline>"}
    # The same message apart from its Date.
    strip = re.compile(rb"^Date: .*\r\n", re.M)
    assert strip.sub(b"", first.content) == strip.sub(b"", second.content)


@pytest.mark.parametrize("stage,reply,want", [
    ("RCPT", "450 4.2.1 Mailbox busy", "to RCPT TO: the mailbox is unavailable"),
    ("MAIL", "421 4.3.2 Service shutting down",
     "to MAIL FROM: the service is not available"),
    ("DATA", "452 4.3.1 Insufficient system storage",
     "at the end of the message: insufficient system storage"),
])
def test_temporary_replies_are_retried(engine, tmp_path, stage, reply, want):
    code = int(reply[:3])
    with MockSMTP() as smtp:
        smtp.always(stage, reply)
        e = engine(config(mail_connector(smtp.url, "    starttls: false\n",
                                         policy="once"), policies=ONCE))
        post(e, {"title": "try later"})
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT state, attempts, last_status FROM deliveries",
                  [("retrying", 1, code)])
        (status, outcome, reason), = db_rows(
            db, "SELECT status, outcome, reason FROM attempts")
        assert e.stop() == 0
        assert smtp.received == []
    assert (status, outcome) == (code, "retry")
    assert reason.startswith(f"SMTP {code} {want}"), reason


@pytest.mark.parametrize("stage,reply,want", [
    ("RCPT", "550 5.1.1 <ops@example.com>: Recipient address rejected",
     "to RCPT TO: mailbox unavailable"),
    ("MAIL", "553 5.1.8 Sender address rejected",
     "to MAIL FROM: mailbox name not allowed"),
    ("DATA", "554 5.7.1 Message rejected as spam",
     "at the end of the message: transaction failed"),
])
def test_permanent_replies_fail_with_code_and_meaning(engine, tmp_path, stage,
                                                     reply, want):
    code = int(reply[:3])
    with MockSMTP() as smtp:
        smtp.always(stage, reply)
        e = engine(config(mail_connector(smtp.url, "    starttls: false\n",
                                         policy="once"), policies=ONCE))
        post(e, {"title": "nobody home"})
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT state, attempts, last_status FROM deliveries",
                  [("failed", 1, code)])
        (status, outcome, reason), = db_rows(
            db, "SELECT status, outcome, reason FROM attempts")
        assert e.stop() == 0
    assert (status, outcome) == (code, "failed")
    assert reason.startswith(f"SMTP {code} {want}"), reason


def test_permanent_reply_reason_quotes_the_server(engine, tmp_path):
    with MockSMTP() as smtp:
        smtp.always("RCPT", "550 5.1.1 <ops@example.com>: Recipient address rejected")
        e = engine(config(mail_connector(smtp.url, "    starttls: false\n",
                                         policy="once"), policies=ONCE))
        post(e, {"title": "nobody home"})
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT state FROM deliveries", [("failed",)])
        (reason,), = db_rows(db, "SELECT reason FROM attempts")
        assert e.stop() == 0
    assert "the server said: 550 5.1.1 <ops@example.com>: Recipient address " \
           "rejected" in reason, reason


@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
def test_auth_logs_in_and_a_wrong_password_fails(engine, tmp_path):
    with MockSMTP(auth={"mailer": "s3cret"}) as smtp:
        e = engine(config(
            mail_connector(smtp.url, "    starttls: false\n    username: mailer\n"
                           "    password: s3cret\n", name="good")
            + mail_connector(smtp.url, "    starttls: false\n    username: mailer\n"
                             "    password: wrong\n", policy="once", name="bad"),
            routes="  - to: [good, bad]\n", policies=ONCE))
        post(e, {"title": "authenticated"})
        got, = smtp.wait_for(1)
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT connector, state, last_status FROM deliveries "
                      "ORDER BY connector",
                  [("bad", "failed", 535), ("good", "delivered", 250)])
        (reason,), = db_rows(
            db, "SELECT a.reason FROM attempts a JOIN deliveries d "
                "ON d.id = a.delivery_id WHERE d.connector = 'bad'")
        assert e.stop() == 0
    assert got.login == "mailer"
    assert "check username and password" in reason, reason
    assert reason.startswith("SMTP 535 to AUTH: authentication credentials invalid")
    assert len(smtp.auth_tries) == 2


def test_starttls_with_the_test_ca(engine, tmp_path):
    with MockSMTP(starttls=True) as smtp:
        e = engine(config(mail_connector(
            smtp.url, f"    tls: {{ ca_file: {CA} }}\n")))
        post(e, {"title": "over TLS"})
        got, = smtp.wait_for(1)
        wait_rows(tmp_path / "hookline.db", "SELECT state FROM deliveries",
                  [("delivered",)])
        assert e.stop() == 0
    assert got.tls
    assert parse(got.content)["Subject"] == "[info] over TLS"


def test_smtps_with_the_test_ca(engine, tmp_path):
    with MockSMTP(implicit_tls=True) as smtp:
        assert smtp.url.startswith("smtps://")
        e = engine(config(mail_connector(
            smtp.url, f"    tls: {{ ca_file: {CA} }}\n")))
        post(e, {"title": "implicit TLS"})
        got, = smtp.wait_for(1)
        wait_rows(tmp_path / "hookline.db", "SELECT state FROM deliveries",
                  [("delivered",)])
        assert e.stop() == 0
    assert got.tls


def test_starttls_required_but_not_offered_is_retried(engine, tmp_path):
    """starttls defaults to true: a server without STARTTLS gets nothing."""
    with MockSMTP() as smtp:
        e = engine(config(mail_connector(smtp.url, policy="once"),
                          policies=ONCE))
        post(e, {"title": "not in clear text"})
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT state, attempts FROM deliveries", [("retrying", 1)])
        (outcome, cls, reason), = db_rows(
            db, "SELECT outcome, error_class, reason FROM attempts")
        assert e.stop() == 0
        assert smtp.data_seen == []
    assert (outcome, cls) == ("retry", "tls")
    assert "does not offer STARTTLS" in reason and "starttls: false" in reason


def test_untrusted_certificate_is_retried(engine, tmp_path):
    """Without the test CA the server's certificate does not verify."""
    with MockSMTP(starttls=True) as smtp:
        e = engine(config(mail_connector(smtp.url, policy="once"),
                          policies=ONCE))
        post(e, {"title": "who are you"})
        db = tmp_path / "hookline.db"
        wait_rows(db, "SELECT state, attempts FROM deliveries", [("retrying", 1)])
        (outcome, cls, reason), = db_rows(
            db, "SELECT outcome, error_class, reason FROM attempts")
        assert e.stop() == 0
        assert smtp.data_seen == []
    assert (outcome, cls) == ("retry", "tls")
    assert "certificate" in reason and "tls.ca_file" in reason, reason


def test_refused_connection_is_retried(engine, tmp_path):
    with MockSMTP() as smtp:
        url = smtp.url  # closed once the block ends
    e = engine(config(mail_connector(url, "    starttls: false\n",
                                     policy="once"), policies=ONCE))
    post(e, {"title": "nobody listening"})
    db = tmp_path / "hookline.db"
    wait_rows(db, "SELECT state FROM deliveries", [("retrying",)])
    (outcome, cls), = db_rows(db, "SELECT outcome, error_class FROM attempts")
    assert (outcome, cls) == ("retry", "refused")
    assert e.stop() == 0


def test_templates_override_subject_and_parts(engine, tmp_path):
    with MockSMTP() as smtp:
        e = engine(config(mail_connector(smtp.url, """\
    starttls: false
    subject: "{{data.labels.host}}: {{data.title}}"
    text: "Host {{data.labels.host}} says {{data.text}}"
    html: ""
""")))
        post(e, {"title": "line\r\nBcc: evil@example.com", "text": "<hi>",
                 "labels": {"host": "web-2"}})
        got, = smtp.wait_for(1)
        assert e.stop() == 0
    check_lines(got.content)
    msg = parse(got.content)
    # The title's line break cannot start another header.
    assert msg["Subject"] == "web-2: line Bcc: evil@example.com"
    assert msg["Bcc"] is None
    assert got.rcpt_tos == ["ops@example.com"]
    # html: "" sends the text part alone; text is not HTML-escaped.
    assert msg.get_content_type() == "text/plain"
    assert msg.get_content().rstrip("\r\n") == "Host web-2 says <hi>"


# ---- configuration refused -------------------------------------------------


def check_config(tmp_path, connectors):
    path = tmp_path / "check.yaml"
    path.write_text(config(connectors))
    return run_cli("check", "-c", str(path), cwd=tmp_path)


@pytest.mark.parametrize("more,want", [
    ('    to: ["ops@example.com", "two@@example.com"]\n',
     r"check\.yaml:\d+:\d+: error: .*to: item 2: 'two@@example.com' is not an "
     r"address: expected one '@'"),
    ('    to: ["ops example.com"]\n', r"to: item 1: .*space"),
    ('    to: []\n', r"to: give at least one recipient"),
    ('    from: "Alerts alerts@example.com"\n', r"from: .*not an address"),
    ('    cc: ["a@example.com>"]\n', r"cc: item 1: .*not an address"),
    ('    password: x\n', r"password: give username too"),
    ('    tls: { ca_file: /nonexistent/ca.pem }\n',
     r"tls\.ca_file: cannot read /nonexistent/ca\.pem"),
])
def test_check_refuses_bad_email_configuration(tmp_path, more, want):
    proc = check_config(tmp_path, mail_connector("smtp://127.0.0.1:25", more))
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert re.search(want, proc.stdout + proc.stderr), proc.stdout + proc.stderr


def test_check_refuses_a_non_smtp_url(tmp_path):
    proc = check_config(tmp_path, mail_connector("https://mail.example.com"))
    assert proc.returncode == 1
    assert "url: expected smtp://HOST:PORT or smtps://HOST:PORT" in proc.stdout + proc.stderr


def test_connectors_lists_the_keys():
    proc = run_cli("connectors", "email")
    assert proc.returncode == 0, proc.stderr
    for key in ("from", "to", "cc", "starttls", "username", "password",
                "subject", "text", "html", "tls.ca_file"):
        assert re.search(rf"^    {re.escape(key)} ", proc.stdout, re.M), key
    proc = run_cli("connectors", "file")
    assert proc.returncode == 0, proc.stderr
    for key in ("path", "max_size", "keep", "template"):
        assert re.search(rf"^    {key} ", proc.stdout, re.M), key


# ---- golden renders --------------------------------------------------------

GOLDEN_INPUTS = sorted(GOLDEN.glob("*.expected.json"))
STEMS = [p.name[:-len(".expected.json")] for p in GOLDEN_INPUTS]

GOLDEN_EMAIL = """\
  mail:
    plugin: email
    url: smtp://mail.example.com:587
    from: "Hookline Alerts <alerts@example.com>"
    to: [ops@example.com, "Ön Call <oncall@example.com>"]
    cc: ["Lead, Team <lead@example.com>"]
    bcc: [audit@example.com]
"""

GOLDEN_FILE = """\
  log:
    plugin: file
    path: {path}
    max_size: 2KiB
    keep: 2
  line:
    plugin: file
    path: {path}
    template: '{{"time":"{{{{time}}}}","severity":"{{{{severity}}}}","title":"{{{{data.title}}}}","url":"{{{{data.url}}}}","status":"{{{{data.status}}}}"}}'
"""


@pytest.fixture(scope="module")
def golden_config(tmp_path_factory):
    d = tmp_path_factory.mktemp("golden")
    path = d / "hookline.yaml"
    path.write_text(
        "storage: { path: ./hookline.db }\nconnectors:\n" + GOLDEN_EMAIL
        + GOLDEN_FILE.format(path=d / "out.jsonl")
        + "routes:\n  - to: [mail, log, line]\n")
    return path


def render(config_path, connector, event, tmp_dir):
    """`hookline render` of one event: the request as JSON."""
    ev = tmp_dir / f"{connector}-{event['id']}.json"
    ev.write_text(json.dumps(event))
    proc = run_cli("render", "-c", str(config_path), "--delivery-id",
                   DELIVERY_ID, "--now", str(NOW_MS), connector, str(ev),
                   cwd=tmp_dir)
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def render_all(config_path, connector, events, tmp_dir):
    with ThreadPoolExecutor(4) as pool:
        return list(pool.map(lambda ev: render(config_path, connector, ev,
                                               tmp_dir), events))


def mustache_html(s):
    return (s.replace("&", "&amp;").replace('"', "&quot;")
            .replace("<", "&lt;").replace(">", "&gt;"))


def expected_subject(event):
    subject = " ".join(f"[{event['severity']}] {event['data']['title']}".split())
    return subject if len(subject) <= 200 else subject[:199] + "…"


def eml_name(stem, events, i):
    return f"{stem}.eml" if len(events) == 1 else f"{stem}-{i + 1}.eml"


def compare_golden(path, got):
    if REGEN:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(got)
        return
    assert path.exists(), f"{path} is missing; run with HOOKLINE_REGEN_GOLDEN=1"
    assert got == path.read_bytes(), \
        f"{path.name} differs; HOOKLINE_REGEN_GOLDEN=1 rewrites it (then inspect the diff)"


@pytest.mark.parametrize("stem", STEMS)
def test_golden_email(golden_config, tmp_path, stem):
    events = json.loads((GOLDEN / f"{stem}.expected.json").read_text())
    for i, (event, req) in enumerate(zip(
            events, render_all(golden_config, "mail", events, tmp_path))):
        assert req["kind"] == "smtp"
        assert req["url"] == "smtp://mail.example.com:587"
        assert req["mail_from"] == "alerts@example.com"
        assert req["rcpt"] == ["ops@example.com", "oncall@example.com",
                               "lead@example.com", "audit@example.com"]
        raw = req["body"].encode()
        compare_golden(EXPECTED_EMAIL / eml_name(stem, events, i), raw)
        check_lines(raw)
        msg = parse(raw)
        assert not msg.defects, msg.defects
        assert msg["Subject"] == expected_subject(event)
        assert msg["Message-ID"] == f"<{DELIVERY_ID}@hookline>"
        assert msg["Date"] == "Mon, 21 Sep 2026 14:13:20 +0000"
        assert email.utils.parsedate_to_datetime(msg["Date"]).timestamp() * 1000 == NOW_MS
        assert msg["X-Hookline-Event"] == event["id"]
        text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
        html = msg.get_body(("html",)).get_content().replace("\r\n", "\n")
        data = event["data"]
        assert text.startswith(data["title"] + "\n"), text[:200]
        assert f"Severity: {event['severity']}\n" in text
        assert f"Source:   {event['source']}\n" in text
        assert mustache_html(data["title"]) in html
        for name, value in data.get("labels", {}).items():
            assert f"  {name}: {value}\n" in text
            assert f"<code>{mustache_html(name)}</code>: {mustache_html(value)}<br>" in html
        if data.get("text"):
            assert data["text"] in text
            assert mustache_html(data["text"]) in html
        if data.get("url"):
            assert f"Link: {data['url']}\n" in text
            assert f'href="{mustache_html(data["url"])}"' in html
        for part in msg.get_body(("plain",)), msg.get_body(("html",)):
            assert part.get_content_charset() == "utf-8"
            assert part["Content-Transfer-Encoding"] in ("quoted-printable", "base64")


def test_golden_email_files_have_inputs():
    """No expected message is left over from a golden input that is gone."""
    want = set()
    for stem, p in zip(STEMS, GOLDEN_INPUTS):
        events = json.loads(p.read_text())
        want |= {eml_name(stem, events, i) for i in range(len(events))}
    have = {p.name for p in EXPECTED_EMAIL.glob("*.eml")}
    if REGEN:
        for name in have - want:
            (EXPECTED_EMAIL / name).unlink()
        return
    assert have == want


@pytest.mark.parametrize("stem", STEMS)
def test_golden_file_lines(golden_config, tmp_path, stem):
    events = json.loads((GOLDEN / f"{stem}.expected.json").read_text())
    plain = render_all(golden_config, "log", events, tmp_path)
    lines = render_all(golden_config, "line", events, tmp_path)
    for event, req in zip(events, plain):
        assert req["kind"] == "file"
        assert req["path"] == str(golden_config.parent / "out.jsonl")
        assert (req["max_bytes"], req["keep"]) == (2048, 2)
        # The event itself, compact, on one line.
        body = req["body"]
        assert body.endswith("\n") and body.count("\n") == 1
        assert json.loads(body) == event
        assert body == json.dumps(event, separators=(",", ":"),
                                  ensure_ascii=False) + "\n"
    got = "".join(req["body"] for req in lines)
    for line, event in zip(got.splitlines(), events):
        assert json.loads(line)["title"] == event["data"]["title"]
    compare_golden(EXPECTED_FILE / f"{stem}.jsonl", got.encode())


# ---- rendering edge cases ---------------------------------------------------


def edge_event(**data):
    ev = json.loads((GOLDEN / "generic__canonical_fields.expected.json").read_text())[0]
    ev["data"].update(data)
    return ev


def test_render_folds_encodes_and_never_makes_long_or_dot_lines(golden_config, tmp_path):
    long_word = "x" * 1500
    ev = edge_event(
        title="Überlänge " + "ab€" * 80,
        text=".\n..leading dots\nFrom here on\n" + long_word + "\n" +
             "trailing space \n" + "tab\t\n" + "=?UTF-8?B?not-a-word?=\n" +
             "\r\nCRLF and a lone\rCR")
    raw = render(golden_config, "mail", ev, tmp_path)["body"].encode()
    check_lines(raw)
    msg = parse(raw)
    assert not msg.defects
    assert msg["Subject"] == expected_subject(ev)
    assert len(msg["Subject"]) == 200 and msg["Subject"].endswith("…")
    text = msg.get_body(("plain",)).get_content().replace("\r\n", "\n")
    assert ev["data"]["text"].replace("\r\n", "\n").replace("\r", "\n") in text
    # Quoted-printable hides what mail software treats specially.
    assert b"\r\n.\r\n" not in raw and b"\r\nFrom " not in raw
    assert b"\r\n=2E\r\n=2E.leading dots\r\n=46rom here" in raw


def test_render_uses_base64_for_mostly_non_ascii_text(golden_config, tmp_path):
    ev = edge_event(title="ディスクがいっぱいです", text="データベースサーバーのディスク使用率が95%を超えました。" * 20)
    raw = render(golden_config, "mail", ev, tmp_path)["body"].encode()
    check_lines(raw)
    msg = parse(raw)
    assert msg["Subject"] == "[info] ディスクがいっぱいです"
    part = msg.get_body(("plain",))
    assert part["Content-Transfer-Encoding"] == "base64"
    assert ev["data"]["text"] in part.get_content()


def test_render_a_templated_subject_cannot_inject_headers(golden_config, tmp_path):
    ev = edge_event(title="ok\r\nBcc: evil@example.com\r\n\r\nbody")
    raw = render(golden_config, "mail", ev, tmp_path)["body"].encode()
    msg = parse(raw)
    assert msg["Bcc"] is None
    assert msg["Subject"] == "[info] ok Bcc: evil@example.com body"


# ---- file through the engine -----------------------------------------------


def file_connector(path, more="", name="out"):
    return f"  {name}:\n    plugin: file\n    path: {path}\n{more}"


def stored_events(db):
    """The canonical events as a connector gets them: data.raw put back."""
    out = {}
    for cid, body, raw_ptr, webhook in db_rows(
            db, "SELECT c.id, c.body, c.raw_ptr, e.body FROM canonical c "
                "JOIN events e ON e.id = c.event_id ORDER BY c.seq"):
        ev = json.loads(body)
        if raw_ptr is not None:
            assert raw_ptr == "", "generic events carry the whole body"
            ev["data"]["raw"] = json.loads(webhook)
        out[cid] = ev
    return out


def test_file_appends_one_json_line_per_event(engine, tmp_path):
    out = tmp_path / "logs" / "events.jsonl"
    out.parent.mkdir()
    e = engine(config(file_connector(out)))
    bodies = [{"title": f"event {i}", "severity": "warning", "text": "a\nb \"q\"",
               "labels": {"n": str(i)}} for i in range(3)]
    for b in bodies:
        post(e, b)
    db = tmp_path / "hookline.db"
    wait_rows(db, "SELECT state, count(*) FROM deliveries GROUP BY state",
              [("delivered", 3)])
    stored = stored_events(db)
    assert e.stop() == 0
    lines = out.read_bytes().split(b"\n")
    assert lines[-1] == b"" and len(lines) == 4
    events = [json.loads(line) for line in lines[:-1]]
    assert sorted(ev["data"]["title"] for ev in events) == ["event 0", "event 1", "event 2"]
    for ev in events:
        assert ev == stored[ev["id"]]
        assert ev["data"]["raw"] in bodies


def test_file_rotates_by_size_and_keeps_two(engine, tmp_path):
    out = tmp_path / "out.jsonl"
    e = engine(config(file_connector(out, "    max_size: 2KiB\n    keep: 2\n")))
    n = 12
    for i in range(n):
        # Every line the same length: the count in each file is known.
        post(e, {"title": f"event {i:02d}", "time": "2026-01-01T00:00:00Z",
                 "text": "x" * 300})
    db = tmp_path / "hookline.db"
    wait_rows(db, "SELECT state, count(*) FROM deliveries GROUP BY state",
              [("delivered", n)])
    assert e.stop() == 0
    files = sorted(p.name for p in tmp_path.glob("out.jsonl*"))
    assert files == ["out.jsonl", "out.jsonl.1", "out.jsonl.2"]
    contents = {name: (tmp_path / name).read_bytes() for name in files}
    sizes = {len(line) + 1 for c in contents.values() for line in c.split(b"\n")[:-1]}
    assert len(sizes) == 1, sizes
    size, = sizes
    per_file = 2048 // size
    assert per_file >= 2
    counts = {name: c.count(b"\n") for name, c in contents.items()}
    assert counts["out.jsonl.1"] == counts["out.jsonl.2"] == per_file
    assert counts["out.jsonl"] == (n - 1) % per_file + 1
    titles = [json.loads(line)["data"]["title"]
              for c in contents.values() for line in c.splitlines()]
    assert len(set(titles)) == len(titles) == 2 * per_file + counts["out.jsonl"]
    assert all(len(c) <= 2048 for c in contents.values())


def test_file_template_line(engine, tmp_path):
    out = tmp_path / "lines.txt"
    e = engine(config(file_connector(out, """\
    template: '{"at":"{{time}}","sev":"{{severity}}","title":"{{data.title}}","host":"{{data.labels.host}}"}'
""")))
    title = 'quote " back \\ newline\nend'
    post(e, {"title": title, "severity": "error", "time": "2026-02-03T04:05:06Z",
             "labels": {"host": "db-1"}})
    wait_rows(tmp_path / "hookline.db", "SELECT state FROM deliveries", [("delivered",)])
    assert e.stop() == 0
    text = out.read_text()
    assert text.endswith("\n") and text.count("\n") == 1
    assert json.loads(text) == {"at": "2026-02-03T04:05:06Z", "sev": "error",
                                "title": title, "host": "db-1"}


def test_file_line_is_redacted_by_the_policy(engine, tmp_path):
    out = tmp_path / "audit.jsonl"
    e = engine(config(file_connector(out, "    policy: masked\n"),
                      policies="policies:\n  masked:\n    redact: [secrets]\n"))
    post(e, {"title": "token leaked", "text": f"the token is {GH_TOKEN} ok"})
    wait_rows(tmp_path / "hookline.db", "SELECT state FROM deliveries", [("delivered",)])
    assert e.stop() == 0
    text = out.read_text()
    assert GH_TOKEN not in text
    ev = json.loads(text)
    assert ev["data"]["text"] == "the token is [REDACTED] ok"
    assert GH_TOKEN not in json.dumps(ev["data"]["raw"])


def test_check_refuses_a_missing_folder(tmp_path):
    missing = tmp_path / "no" / "such"
    proc = check_config(tmp_path, file_connector(missing / "out.jsonl"))
    assert proc.returncode == 1
    out = proc.stdout + proc.stderr
    assert re.search(rf"check\.yaml:\d+:\d+: error: .*path: the folder "
                     rf"{re.escape(str(missing))} does not exist; create it "
                     r"or fix path", out), out


@pytest.mark.parametrize("more,want", [
    ("    keep: -1\n", r"keep: expected 0 to 1000 rotated files, got -1"),
    ("    template: \"a\\nb\"\n", r"template: a line cannot hold a line break"),
    ("    url: http://example.com\n", r"url: the file connector writes to path"),
])
def test_check_refuses_bad_file_configuration(tmp_path, more, want):
    proc = check_config(tmp_path, file_connector(tmp_path / "x.jsonl", more))
    assert proc.returncode == 1
    assert re.search(want, proc.stdout + proc.stderr), proc.stdout + proc.stderr


def test_check_refuses_a_path_that_is_a_folder(tmp_path):
    proc = check_config(tmp_path, file_connector(tmp_path))
    assert proc.returncode == 1
    assert "path: expected a file name" in proc.stdout + proc.stderr or \
        f"path: {tmp_path} is not a regular file" in proc.stdout + proc.stderr
