"""The examples under examples/ work as their READMEs say: every
configuration passes `hookline check`, every run.sh runs its pipeline end to
end and exits 0, the quickstart's receiver prints what hookline delivers, and
the out-of-tree hello connector builds against an installed SDK and
delivers."""
import json
import os
import queue
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from pathlib import Path

import pytest

import conftest
from conftest import ROOT, assert_clean, db_rows, run_cli, wait_rows
from sink import Answer, Sink

EXAMPLES = ROOT / "examples"
CONFIGS = sorted(EXAMPLES.glob("*/hookline.yaml"))
RUN_SCRIPTS = sorted(EXAMPLES.glob("*/run.sh"))
PY = "/usr/bin/python3"
ULID = re.compile(r"^[0-9A-HJKMNP-TV-Z]{26}$")

# A value for every ${NAME} an example uses, valid for its key (a routing key
# is 32 characters, whsec_ secrets are base64, URLs are https).
DUMMY_ENV = {
    "ALERTMANAGER_TOKEN": "dummy-alertmanager-token",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T000/B000/XXXX",
    "PAGERDUTY_EVENTS_URL": "https://events.pagerduty.com",
    "PAGERDUTY_ROUTING_KEY": "0123456789abcdef0123456789abcdef",
    "GITHUB_WEBHOOK_SECRET": "dummy-github-secret",
    "JIRA_URL": "https://example.atlassian.net",
    "JIRA_EMAIL_AND_TOKEN": "ops@example.com:dummy-token",
    "GRAFANA_WEBHOOK_SECRET": "dummy-grafana-secret",
    "TEAMS_WEBHOOK_URL": "https://example.webhook.office.com/workflows/x",
    "PAGERDUTY_WEBHOOK_SECRET": "dummy-pagerduty-secret",
    "PARTNER_WHSEC": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "PARTNER_OUT_URL": "https://partner.example/hooks/in",
    "PARTNER_OUT_WHSEC": "whsec_ZXhhbXBsZSBvdXRib3VuZCBzaWduaW5nIGtleSAzMmI=",
}

# Keys that hold a credential or a destination, and their values.
SECRET_VALUE = re.compile(
    r"\b(tokens|secrets|secret|routing_key|url|basic|bearer|api_key)\s*:\s*"
    r"(\[[^\]]*\]|[^\s{][^\s,}#]*)")


def without_comments(path):
    return "\n".join(re.sub(r"(^|\s)#.*$", "", line)
                     for line in path.read_text().splitlines())


def env_names(path):
    """The ${NAME}s a configuration reads (not those in its comments)."""
    return sorted(set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)\}",
                                 without_comments(path))))


def example_id(path):
    return path.parent.name


@pytest.mark.parametrize("config", CONFIGS, ids=example_id)
def test_example_config_passes_check(config, tmp_path):
    names = env_names(config)
    missing = [n for n in names if n not in DUMMY_ENV]
    assert not missing, f"{config}: give DUMMY_ENV a value for {missing}"
    env = {n: DUMMY_ENV[n] for n in names}
    p = run_cli("check", "-c", str(config), env=env, cwd=tmp_path)
    assert p.returncode == 0, p.stdout + p.stderr
    assert re.search(r": ok: .* 0 warnings$", p.stdout.strip()), p.stdout
    if not names:
        return
    # Each variable is needed: without it the file is refused, naming it.
    short = dict(env)
    del short[names[0]]
    p = run_cli("check", "-c", str(config), env=short, cwd=tmp_path)
    assert p.returncode == 1
    assert names[0] in p.stdout + p.stderr


@pytest.mark.parametrize("config", [c for c in CONFIGS
                                    if c.parent.name != "quickstart"],
                         ids=example_id)
def test_example_keeps_secrets_and_urls_in_the_environment(config):
    """Verify secrets, tokens and connector URLs are ${ENV}, and the README
    beside the file names every variable."""
    values = SECRET_VALUE.findall(without_comments(config))
    assert values, f"{config}: no secrets or URLs found"
    for key, value in values:
        assert "${" in value, f"{config}: {key}: {value} is written in the file"
    readme = (config.parent / "README.md").read_text()
    for name in env_names(config):
        assert f"`{name}`" in readme, f"{config.parent}/README.md: {name}"


@pytest.mark.parametrize("script", RUN_SCRIPTS, ids=example_id)
def test_example_runs_end_to_end(script, tmp_path):
    """run.sh starts its receivers and hookline (the sanitizer build), posts
    the published payloads with curl, waits for the deliveries and exits 0;
    hookline's log has no sanitizer report."""
    log = tmp_path / "hookline.log"
    env = dict(os.environ, HOOKLINE_BIN=conftest.BIN, HOOKLINE_LOG=str(log),
               TMPDIR=str(tmp_path), WAIT_SECONDS="30")
    p = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                       env=env, timeout=240, stdin=subprocess.DEVNULL)
    out = p.stdout + p.stderr
    assert p.returncode == 0, out
    assert "==> OK:" in p.stdout, out
    assert "FAILED" not in out, out
    assert_clean(log.read_text())
    assert_cleaned_up(tmp_path, out)


def processes_under(path):
    """Processes whose command line names something under path."""
    found = []
    for proc in Path("/proc").iterdir():
        try:
            cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ")
        except OSError:
            continue
        if str(path).encode() in cmd:
            found.append(cmd.decode(errors="replace"))
    return found


def assert_cleaned_up(tmp_path, out):
    """Everything a run.sh started is gone, its temporary folder too."""
    assert not processes_under(tmp_path), (processes_under(tmp_path), out)
    assert not list(tmp_path.glob("hookline-example.*")), out


def test_run_script_fails_clearly_without_the_binary(tmp_path):
    script = EXAMPLES / "grafana-to-teams" / "run.sh"
    env = dict(os.environ, HOOKLINE_BIN=str(tmp_path / "no-such-hookline"),
               TMPDIR=str(tmp_path))
    p = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                       env=env, timeout=60, stdin=subprocess.DEVNULL)
    assert p.returncode == 1
    assert "no hookline binary at" in p.stderr
    assert_cleaned_up(tmp_path, p.stderr)


def test_run_script_stops_everything_when_a_step_fails(tmp_path):
    """With the payloads missing, the first post fails after the receivers
    and hookline have started: run.sh says why, shows hookline's log, exits
    1, and stops all it started."""
    (tmp_path / "empty").mkdir()
    script = EXAMPLES / "alertmanager-to-slack-and-pagerduty" / "run.sh"
    env = dict(os.environ, HOOKLINE_BIN=conftest.BIN,
               HOOKLINE_FIXTURES=str(tmp_path / "empty"),
               TMPDIR=str(tmp_path))
    p = subprocess.run(["bash", str(script)], capture_output=True, text=True,
                       env=env, timeout=120, stdin=subprocess.DEVNULL)
    assert p.returncode == 1, p.stdout + p.stderr
    assert "hookline   listening on" in p.stdout
    assert "FAILED: cannot read " in p.stderr, p.stderr
    assert "--- hookline log" in p.stderr and "http: listening" in p.stderr
    assert_cleaned_up(tmp_path, p.stdout + p.stderr)


# ---- the quickstart's receiver ---------------------------------------------

class Receiver:
    """examples/quickstart/receiver.py on a free port, its output read
    line by line."""

    def __init__(self, *args):
        self.proc = subprocess.Popen(
            [PY, str(EXAMPLES / "quickstart" / "receiver.py"), "--port", "0",
             *args], stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, stdin=subprocess.DEVNULL)
        self.lines = queue.Queue()
        self.seen = []
        threading.Thread(target=self._read, daemon=True).start()
        first = self.next_line(20)
        m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", first)
        assert m, first
        self.port = int(m.group(1))

    def _read(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))

    def next_line(self, timeout):
        try:
            line = self.lines.get(timeout=timeout)
        except queue.Empty:
            raise AssertionError(f"the receiver printed nothing more; so far: "
                                 f"{self.seen!r}") from None
        self.seen.append(line)
        return line

    def read_until(self, pattern, timeout=20):
        """Lines up to and including the first matching pattern."""
        deadline = time.monotonic() + timeout
        got = []
        while True:
            line = self.next_line(max(0.1, deadline - time.monotonic()))
            got.append(line)
            if re.search(pattern, line):
                return got

    def stop(self):
        self.proc.terminate()
        self.proc.wait(10)


@pytest.fixture
def receiver():
    started = []

    def start(*args):
        r = Receiver(*args)
        started.append(r)
        return r

    yield start
    for r in started:
        r.stop()


def test_quickstart_receiver_prints_each_delivery(engine, receiver, tmp_path):
    """The quickstart's configuration (on free ports) delivers a curl-posted
    event to receiver.py, which prints the method, path, Idempotency-Key
    and the pretty-printed canonical event."""
    recv = receiver()
    text = (EXAMPLES / "quickstart" / "hookline.yaml").read_text()
    text, n1 = re.subn(r"(?m)^  listen: .*$", "  listen: 127.0.0.1:0", text)
    text, n2 = re.subn(r"http://127\.0\.0\.1:9090/",
                       f"http://127.0.0.1:{recv.port}/", text)
    assert (n1, n2) == (1, 1), "the quickstart's listen or receiver URL moved"
    e = engine(text)
    p = subprocess.run(
        ["curl", "-sS", "-o", "-", "-w", "\n%{http_code}", "--max-time", "10",
         f"http://127.0.0.1:{e.port}/v1/hooks/demo",
         "-H", "Authorization: Bearer demo-token",
         "-H", "Content-Type: application/json",
         "-d", '{"title":"disk almost full","severity":"warning"}'],
        capture_output=True, text=True, timeout=30)
    assert p.stdout.rsplit("\n", 1)[1] == "202", p.stdout + p.stderr
    block = recv.read_until(r"^$", timeout=30)
    assert block[0] == "POST /hook", block
    key = block[1].removeprefix("Idempotency-Key: ")
    assert block[1].startswith("Idempotency-Key: ") and ULID.match(key), block
    body = "\n".join(block[2:])
    assert '"specversion": "1.0"' in body, body
    assert '  "severity": "warning",' in body, body
    assert '"title": "disk almost full"' in body, body
    assert len(block[2:-1]) <= 41, block          # cut after 40 lines
    rows = wait_rows(tmp_path / "var/hookline.db",
                     "SELECT id, state FROM deliveries", lambda r: r and
                     r[0][1] == "delivered")
    assert rows[0][0] == key


def test_quickstart_receiver_shortens_and_answers_200(receiver):
    recv = receiver("--lines", "3")
    body = json.dumps({f"k{i}": i for i in range(10)}).encode()
    req = urllib.request.Request(
        f"http://127.0.0.1:{recv.port}/x/y", data=body, method="PUT",
        headers={"Content-Type": "application/json",
                 "Idempotency-Key": "abc"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
        assert json.loads(resp.read()) == {"ok": True}
    block = recv.read_until(r"more lines")
    assert block == ["PUT /x/y", "Idempotency-Key: abc", "{", '  "k0": 0,',
                     '  "k1": 1,', "  ... (9 more lines)"]
    req = urllib.request.Request(f"http://127.0.0.1:{recv.port}/t",
                                 data=b"plain words", method="POST")
    with urllib.request.urlopen(req, timeout=10) as resp:
        assert resp.status == 200
    block = recv.read_until(r"plain words")
    assert block == ["", "POST /t", "Idempotency-Key: (none)", "plain words"]


def test_quickstart_receiver_says_when_the_port_is_taken(receiver):
    recv = receiver()
    p = subprocess.run([PY, str(EXAMPLES / "quickstart" / "receiver.py"),
                        "--port", str(recv.port)], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 1
    assert f"cannot listen on 127.0.0.1:{recv.port}" in p.stderr


# ---- the out-of-tree connector -----------------------------------------------

HELLO = EXAMPLES / "connectors" / "hello"


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    """hookline installed into a temporary prefix (as a user would, with
    make install), with hello built from a copy of its folder against only
    that prefix's SDK and installed beside the built-in connectors."""
    tmp = tmp_path_factory.mktemp("hello")
    prefix = tmp / "prefix"
    p = subprocess.run(["make", "-s", "install", f"PREFIX={prefix}"],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 0, f"make install failed:\n{p.stdout}{p.stderr}"
    src = tmp / "hello-src"
    src.mkdir()
    for name in ("hello.c", "Makefile"):
        shutil.copy(HELLO / name, src / name)
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib/pkgconfig"))
    p = subprocess.run(["make", "install"], cwd=src, env=env,
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 0, p.stdout + p.stderr
    assert f"-I{prefix}/include" in p.stdout, p.stdout
    assert (prefix / "lib/hookline/connectors/hello.so").is_file()
    return prefix


def test_hello_connector_builds_out_of_tree_and_delivers(
        installed, engine, tmp_path, monkeypatch):
    """The example's configuration, pointed at a receiver: the greeting is
    rendered and POSTed; a 429 with Retry-After is tried again after it; a
    400 fails the delivery with the connector's reason."""
    bin_ = str(installed / "bin/hookline")
    p = subprocess.run([bin_, "connectors", "hello"], capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "hello 1.0.0" in p.stdout and "greeting" in p.stdout, p.stdout
    assert f"{installed}/bin/../lib/hookline/connectors/hello.so" in p.stdout

    with Sink() as sink:
        sink.script([Answer(429, b"slow down", {"Retry-After": "1"})])
        text = (HELLO / "hookline.yaml").read_text()
        text, n1 = re.subn(r"(?m)^  listen: .*$", "  listen: 127.0.0.1:0",
                           text)
        text, n2 = re.subn(r"http://127\.0\.0\.1:9090/hello",
                           sink.url("/hello"), text)
        assert (n1, n2) == (1, 1)
        monkeypatch.setattr(conftest, "BIN", bin_)
        e = engine(text)
        db = tmp_path / "var/hookline.db"

        def post(body):
            status, _, answer = e.request(
                "POST", "/v1/hooks/demo", json.dumps(body).encode(),
                {"Authorization": "Bearer demo-token",
                 "Content-Type": "application/json"})
            assert status == 202, answer

        post({"title": 'disk "almost" full', "severity": "warning"})
        reqs = sink.wait_for(2, timeout=30)
        assert [r.answer_status for r in reqs] == [429, 200]
        for r in reqs:
            assert r.method == "POST" and r.path == "/hello"
            assert r.headers["Content-Type"] == "application/json"
            assert r.json() == {
                "greeting": 'Hello from hookline: [warning] disk "almost" full'}
        assert reqs[0].headers["Idempotency-Key"] == \
            reqs[1].headers["Idempotency-Key"]
        assert reqs[1].time - reqs[0].time >= 0.9   # Retry-After: 1 waited
        wait_rows(db, "SELECT state, attempts FROM deliveries",
                  [("delivered", 2)], timeout=30)
        rows = db_rows(db, "SELECT attempt, status, outcome, reason FROM "
                           "attempts ORDER BY seq")
        assert rows[0][:3] == (1, 429, "retry")
        assert "rate limiting (429); Retry-After: 1" in rows[0][3]
        assert rows[1][:3] == (2, 200, "delivered")

        sink.respond(400, b'{"error": "no greetings today"}',
                     {"Content-Type": "application/json"})
        post({"title": "second", "severity": "info"})
        sink.wait_for(3, timeout=30)
        rows = wait_rows(db, "SELECT state, attempts, last_error FROM "
                             "deliveries ORDER BY seq",
                         lambda r: len(r) == 2 and r[1][0] == "failed",
                         timeout=30)
        assert rows[1][1] == 1
        assert rows[1][2].endswith("the receiver refused the greeting "
                                   '(HTTP 400): {"error": "no greetings '
                                   'today"}'), rows[1][2]
        assert sink.requests[2].json() == {
            "greeting": "Hello from hookline: [info] second"}
        e.wait_log(r"greeting refused.*status=400")


def test_hello_refuses_a_url_it_cannot_post_to(installed, tmp_path):
    """create's own refusals, pointed at the key's line by hookline: an
    smtp:// URL (which the host's URL check lets through) and none."""
    f = tmp_path / "hello.yaml"
    f.write_text("storage: { path: ./hookline.db }\n"
                 "connectors:\n"
                 "  greeter: { plugin: hello, url: \"smtp://mail.example\" }\n"
                 "  nowhere: { plugin: hello }\n"
                 "routes:\n  - to: [greeter, nowhere]\n")
    p = subprocess.run([str(installed / "bin/hookline"), "check", "-c",
                        str(f)], capture_output=True, text=True, timeout=30,
                       cwd=tmp_path)
    out = p.stdout + p.stderr
    assert p.returncode == 1, out
    assert re.search(r"hello\.yaml:3:\d+: error: .*url: expected an http:// "
                     r"or https:// URL", out), out
    assert re.search(r"hello\.yaml:4:\d+: error: .*url is required: where "
                     r"to send the greetings", out), out
