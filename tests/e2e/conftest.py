"""Shared fixtures for the end-to-end suites: the real hookline binary
(the sanitizer build) started on a free loopback port, spoken to over real
HTTP."""
import http.client
import os
import re
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = os.environ.get("HOOKLINE_BIN", str(ROOT / "build" / "test" / "hookline"))
SANITIZER_MARKS = ("ERROR: AddressSanitizer", "ERROR: LeakSanitizer",
                   "runtime error:", "SUMMARY: UndefinedBehaviorSanitizer")


def run_cli(*args, env=None, timeout=30, cwd=None, input=None):
    """Run the binary to completion; returns CompletedProcess (text)."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    proc = subprocess.run([BIN, *args], capture_output=True, text=True,
                          env=full_env, timeout=timeout, cwd=cwd,
                          input=input,
                          stdin=None if input is not None else subprocess.DEVNULL)
    assert_clean(proc.stderr)
    return proc


def assert_clean(stderr):
    for mark in SANITIZER_MARKS:
        assert mark not in stderr, f"sanitizer report:\n{stderr}"


class Engine:
    """One running `hookline run` process."""

    def __init__(self, config_path, env=None, cwd=None):
        self.config_path = Path(config_path)
        self.log_path = self.config_path.with_suffix(".log")
        self.env = dict(os.environ)
        self.env.update(env or {})
        self.cwd = cwd
        self.proc = None
        self.port = None

    def start(self, expect_listen=True, timeout=20):
        self.log_file = open(self.log_path, "w")
        self.proc = subprocess.Popen([BIN, "run", "-c", str(self.config_path)],
                                     stdout=subprocess.DEVNULL,
                                     stderr=self.log_file, env=self.env,
                                     cwd=self.cwd)
        if not expect_listen:
            return self
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            m = re.search(r"listening\"?.*?addr\"?[=:]\"?[\[\]0-9a-f.:]*?:(\d+)",
                          self.log())
            if m:
                self.port = int(m.group(1))
                return self
            if self.proc.poll() is not None:
                raise AssertionError(f"hookline exited {self.proc.returncode}:\n{self.log()}")
            time.sleep(0.02)
        raise AssertionError(f"hookline did not start listening:\n{self.log()}")

    def log(self):
        return self.log_path.read_text()

    def wait_log(self, pattern, timeout=10, start=0):
        """Wait until the log (from offset start) matches pattern."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            text = self.log()[start:]
            m = re.search(pattern, text)
            if m:
                return m
            time.sleep(0.02)
        raise AssertionError(f"log never matched {pattern!r}:\n{self.log()}")

    def request(self, method, path, body=None, headers=None, timeout=10):
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            conn.request(method, path, body=body, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, dict(resp.getheaders()), resp.read()
        finally:
            conn.close()

    def send(self, sig):
        self.proc.send_signal(sig)

    def stop(self, sig=signal.SIGTERM, timeout=20):
        """Stop and return the exit code; fails on a sanitizer report."""
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(f"hookline did not exit on {sig!r}:\n{self.log()}")
        self.log_file.close()
        assert_clean(self.log())
        return rc


@pytest.fixture
def engine(tmp_path):
    """engine(config_text, env=None) -> a started Engine; stopped after."""
    started = []

    def start(config_text, env=None, expect_listen=True, name="hookline.yaml"):
        path = tmp_path / name
        path.write_text(config_text)
        e = Engine(path, env=env, cwd=tmp_path).start(expect_listen=expect_listen)
        started.append(e)
        return e

    yield start
    for e in started:
        if e.proc and e.proc.poll() is None:
            e.stop()


def minimal_config(extra=""):
    """A valid configuration on a free port, with its store in the test's
    temporary folder."""
    return ("server:\n  listen: 127.0.0.1:0\n"
            "storage:\n  path: ./hookline.db\n" + extra)


def db_rows(path, sql, args=()):
    """Rows of a read-only query on the store, as a user would look."""
    db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
    try:
        return db.execute(sql, args).fetchall()
    finally:
        db.close()


def until(fn, what, timeout=20):
    """Poll fn() until it returns something truthy; return it."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = fn()
        if last:
            return last
        time.sleep(0.05)
    raise AssertionError(f"never happened: {what} (last: {last!r})")


def wait_rows(path, sql, want, args=(), timeout=15):
    """Poll until sql returns want: a value compared to the rows, or a
    predicate called with them. Returns the rows."""
    deadline = time.monotonic() + timeout
    rows = None
    while time.monotonic() < deadline:
        try:
            rows = db_rows(path, sql, args)
        except sqlite3.OperationalError:
            rows = None
        if rows is not None and (want(rows) if callable(want) else rows == want):
            return rows
        time.sleep(0.03)
    raise AssertionError(f"{sql} gave {rows!r}, wanted {want!r}")
