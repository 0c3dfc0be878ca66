"""Prometheus Alertmanager (Debian's prometheus-alertmanager) as a real
client: alerts posted to its API are grouped, sent to hookline's
alertmanager source by its webhook_configs receiver with a bearer token, and
each reaches the Slack mock as one message; a resolved alert comes back as a
resolved message with the same dedupkey."""
import datetime
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

from conftest import db_rows, minimal_config, wait_rows
from mock_chat import SlackMock

ALERTMANAGER = os.environ.get("HOOKLINE_ALERTMANAGER_BIN",
                              "/usr/bin/prometheus-alertmanager")
TOKEN = "am-to-hookline-7f3d9c2e41b8"

pytestmark = pytest.mark.skipif(
    not os.access(ALERTMANAGER, os.X_OK),
    reason=f"{ALERTMANAGER} is not installed (Debian package "
           "prometheus-alertmanager; `make deps` installs it)")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def iso(t):
    return datetime.datetime.fromtimestamp(
        t, datetime.timezone.utc).isoformat(timespec="milliseconds")


class Alertmanager:
    """One alertmanager process on free loopback ports, clustering off."""

    def __init__(self, tmp_path, hook_url):
        self.dir = tmp_path / "alertmanager"
        self.dir.mkdir()
        config = self.dir / "alertmanager.yml"
        config.write_text(json.dumps({
            "route": {"receiver": "hookline", "group_by": ["alertname"],
                      "group_wait": "1s", "group_interval": "1s",
                      "repeat_interval": "1h"},
            "receivers": [{"name": "hookline", "webhook_configs": [{
                "url": hook_url, "send_resolved": True,
                "http_config": {"authorization": {
                    "type": "Bearer", "credentials": TOKEN}}}]}],
        }, indent=2))
        self.log_path = self.dir / "alertmanager.log"
        for _ in range(5):   # another process may take the port first
            self.port = free_port()
            self.log = open(self.log_path, "w")
            self.proc = subprocess.Popen(
                [ALERTMANAGER, f"--config.file={config}",
                 f"--storage.path={self.dir / 'data'}",
                 f"--web.listen-address=127.0.0.1:{self.port}",
                 "--cluster.listen-address=", "--log.level=debug"],
                stdout=self.log, stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL)
            if self._ready(60):
                return
            self.stop()
        raise AssertionError(f"alertmanager did not start:\n"
                             f"{self.log_path.read_text()}")

    def _ready(self, timeout):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                return False
            try:
                with urllib.request.urlopen(
                        f"http://127.0.0.1:{self.port}/-/ready",
                        timeout=5) as r:
                    if r.status == 200:
                        return True
            except (urllib.error.URLError, OSError):
                pass
            time.sleep(0.1)
        return False

    def post_alerts(self, alerts):
        req = urllib.request.Request(
            f"http://127.0.0.1:{self.port}/api/v2/alerts",
            data=json.dumps(alerts).encode(), method="POST",
            headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=20) as r:
            assert r.status == 200, r.read()

    def stop(self):
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(20)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.log.close()


@pytest.fixture
def alertmanager(tmp_path):
    started = []

    def start(hook_url):
        am = Alertmanager(tmp_path, hook_url)
        started.append(am)
        return am

    yield start
    for am in started:
        am.stop()


def test_alertmanager_notifies_slack_per_alert_and_resolves(
        engine, alertmanager, tmp_path):
    with SlackMock() as slack:
        e = engine(minimal_config(f"""\
outbound: {{ allow_networks: [127.0.0.0/8] }}
sources:
  am:
    kind: alertmanager
    verify: {{ bearer: {{ tokens: [{TOKEN}] }} }}
connectors:
  ops-slack:
    plugin: slack
    url: {slack.url("/services/T000/B000/XXXX")}
routes:
  - match: {{ source: am }}
    to: [ops-slack]
"""))
        am = alertmanager(f"http://127.0.0.1:{e.port}/v1/hooks/am")
        now = time.time()
        disk = {"labels": {"alertname": "DiskFull", "severity": "critical",
                           "instance": "db-1:9100", "job": "node"},
                "annotations": {"summary": "Disk full on db-1",
                                "description": "/var is at 99%"},
                "generatorURL": "http://prometheus.example:9090/graph?g0.expr=disk",
                "startsAt": iso(now - 60)}
        latency = {"labels": {"alertname": "HighLatency", "severity": "warning",
                              "service": "checkout"},
                   "annotations": {"summary": "p99 latency over 2s on checkout"},
                   "startsAt": iso(now - 30)}
        am.post_alerts([disk, latency])

        msgs = slack.wait_messages(2, timeout=90)
        texts = sorted(m["text"] for m in msgs)
        assert texts == [":large_yellow_circle: p99 latency over 2s on checkout",
                         ":red_circle: Disk full on db-1"], texts

        # One webhook per group, each from Alertmanager itself, with the
        # bearer token checked (and not stored).
        db = tmp_path / "hookline.db"
        rows = db_rows(db, "SELECT source, headers FROM events ORDER BY seq")
        assert len(rows) == 2, rows
        for source, headers in rows:
            h = json.loads(headers)
            assert source == "am"
            assert h["user-agent"].startswith("Alertmanager/"), h
            assert "authorization" not in h
        firing = wait_rows(
            db, "SELECT type, json_extract(body, '$.subject') AS subject, "
                "severity, dedupkey FROM canonical ORDER BY subject",
            lambda r: len(r) == 2)
        assert [(t, s, sev) for t, s, sev, _ in firing] == [
            ("alert.firing", "DiskFull", "critical"),
            ("alert.firing", "HighLatency", "warning")]
        disk_key = firing[0][3]
        assert disk_key and disk_key != firing[1][3]

        # Resolving DiskFull: the same alert again, ended in the past.
        am.post_alerts([dict(disk, endsAt=iso(time.time() - 1))])
        msgs = slack.wait_messages(3, timeout=90)
        assert msgs[2]["text"] == \
            ":white_check_mark: Resolved: Disk full on db-1", msgs[2]
        rows = wait_rows(
            db, "SELECT type, json_extract(body, '$.subject'), dedupkey "
                "FROM canonical WHERE type = 'alert.resolved'",
            lambda r: len(r) == 1)
        assert rows == [("alert.resolved", "DiskFull", disk_key)]
        assert not slack.rejected
        assert len(slack.messages) == 3, slack.messages
        wait_rows(db, "SELECT state, count(*) FROM deliveries GROUP BY state",
                  [("delivered", 3)])
