"""The command line as a user meets it: check, version, help, run,
/healthz, SIGHUP reload and SIGTERM/SIGINT shutdown."""
import json
import signal
import socket
import time

import pytest

from conftest import ROOT, minimal_config, run_cli

VERSION = (ROOT / "VERSION").read_text().strip()

DESIGN_ENV = {
    "HOOKLINE_ADMIN_TOKEN": "0123456789abcdef0123456789",
    "ACME_TOKEN": "acme-token-0123456789",
    "AM_TOKEN": "am-token",
    "GITHUB_SECRET": "It's a Secret to Everybody",
    "PARTNER_WHSEC": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "SLACK_SIGNING_SECRET": "8f742231b10e8888abcd99yyyzzz85a5",
    "SLACK_WEBHOOK_URL": "https://hooks.slack.com/services/T0/B0/X",
    "PD_ROUTING_KEY": "R0UT1NGK3Y0123456789abcdefABCDEF",
    "JIRA_EMAIL_AND_TOKEN": "ops@example.com:token",
    "OUT_WHSEC": "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    "CI_SECRET": "ci-secret",
}

THREE_MISTAKES = """\
server:
  listen: 127.0.0.1:8080
  max_body: lots
storage:
  durabilty: full
routes:
  - to: [nowhere]
"""


def test_version_prints_the_version_file():
    p = run_cli("version")
    assert p.returncode == 0
    assert p.stdout == f"hookline {VERSION}\n"
    assert run_cli("--version").stdout == f"hookline {VERSION}\n"


def test_help_lists_every_command():
    p = run_cli("--help")
    assert p.returncode == 0
    for cmd in ("run", "check", "version", "help"):
        assert f"\n  {cmd} " in p.stdout


@pytest.mark.parametrize("cmd", ["run", "check"])
def test_help_per_command(cmd):
    a = run_cli("help", cmd)
    b = run_cli(cmd, "--help")
    assert a.returncode == 0 and b.returncode == 0
    assert a.stdout == b.stdout
    assert a.stdout.startswith(f"Usage: hookline {cmd} [-c FILE]")
    assert "--config FILE" in a.stdout


def test_unknown_command_and_option_are_usage_errors():
    p = run_cli("frobnicate")
    assert p.returncode == 2
    assert "unknown command 'frobnicate'" in p.stderr
    p = run_cli("check", "--bogus")
    assert p.returncode == 2
    assert "unknown option '--bogus'" in p.stderr
    p = run_cli("check", "-c")
    assert p.returncode == 2
    assert "-c needs a file name" in p.stderr


def test_check_quickstart_is_valid():
    path = "examples/quickstart/hookline.yaml"
    p = run_cli("check", "-c", path, cwd=ROOT)
    assert p.returncode == 0, p.stderr
    assert p.stdout == (f"{path}: ok: 0 tenants, 1 source, 1 connector, "
                        "1 policy, 1 route; 0 warnings\n")


def test_check_design_example_is_valid():
    """DESIGN.md's example, with every connector plugin it names."""
    path = ROOT / "tests/data/config/design.yaml"
    p = run_cli("check", "-c", str(path), env=DESIGN_ENV)
    assert p.returncode == 0, p.stderr
    assert p.stdout.startswith(f"{path}: ok: 1 tenant, 4 sources, 5 connectors, "
                               "2 policies, 3 routes;")


def test_check_reports_all_three_mistakes_with_positions(tmp_path):
    f = tmp_path / "bad.yaml"
    f.write_text(THREE_MISTAKES)
    p = run_cli("check", "-c", str(f))
    assert p.returncode == 1
    assert p.stdout == ""
    errors = [l for l in p.stderr.splitlines() if ": error: " in l]
    assert errors == [
        f"{f}:3:13: error: server.max_body: expected a size such as 512KiB, "
        "1MiB or 1048576, got 'lots'",
        f"{f}:5:3: error: storage.durabilty: unknown key 'durabilty'; "
        "did you mean 'durability'?",
        f"{f}:7:10: error: routes[0].to[0]: no connector named 'nowhere' "
        "(connectors: none are defined); define it under 'connectors' or "
        "fix the name",
    ]
    assert p.stderr.splitlines()[-1] == f"{f}: 3 errors, 0 warnings"


def test_check_unset_variable_names_it(tmp_path):
    f = tmp_path / "env.yaml"
    f.write_text("admin:\n  token: ${HOOKLINE_TEST_UNSET_VAR}\n")
    p = run_cli("check", "-c", str(f), env={"HOOKLINE_TEST_UNSET_VAR": ""})
    assert p.returncode == 1  # set but empty: the token must not be empty
    assert f"{f}:2:10: error: admin.token: must not be empty" in p.stderr
    p = run_cli("check", "-c", str(f))
    assert p.returncode == 1
    assert (f"{f}:2:10: error: environment variable HOOKLINE_TEST_UNSET_VAR "
            "is not set") in p.stderr


def test_check_missing_file(tmp_path):
    f = tmp_path / "absent.yaml"
    p = run_cli("check", "-c", str(f))
    assert p.returncode == 1
    assert f"{f}: error: cannot open the file: No such file or directory" in p.stderr


def test_check_uses_hookline_config_variable(tmp_path):
    f = tmp_path / "via-env.yaml"
    f.write_text(minimal_config())
    p = run_cli("check", env={"HOOKLINE_CONFIG": str(f)})
    assert p.returncode == 0
    assert p.stdout.startswith(f"{f}: ok:")


def test_run_serves_healthz(engine):
    e = engine(minimal_config())
    status, headers, body = e.request("GET", "/healthz")
    assert status == 200
    assert headers["Content-Type"] == "application/json"
    assert json.loads(body) == {"status": "ok"}
    status, _, body = e.request("GET", "/readyz")
    assert status == 200 and json.loads(body) == {"status": "ready"}


def test_unknown_route_and_wrong_method_are_json_errors(engine):
    e = engine(minimal_config())
    status, _, body = e.request("GET", "/nope")
    assert status == 404
    assert json.loads(body) == {"error": {"code": "not_found",
                                          "message": "no route for /nope"}}
    status, headers, body = e.request("DELETE", "/healthz")
    assert status == 405
    assert headers["Allow"] == "GET, HEAD"
    assert json.loads(body)["error"]["code"] == "method_not_allowed"


def test_run_refuses_an_invalid_file(engine, tmp_path):
    e = engine(THREE_MISTAKES, expect_listen=False)
    assert e.proc.wait(timeout=20) == 1
    log = e.log()
    assert "error: server.max_body" in log
    assert "3 errors; hookline did not start" in log


def test_run_reports_a_port_in_use(engine):
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    port = holder.getsockname()[1]
    try:
        e = engine(f"server:\n  listen: 127.0.0.1:{port}\n", expect_listen=False)
        assert e.proc.wait(timeout=20) == 1
        assert "cannot listen" in e.log()
        assert "address already in use" in e.log()
    finally:
        holder.close()


def test_sighup_with_a_good_file_applies_it(engine):
    e = engine(minimal_config("log:\n  format: text\n"))
    e.wait_log(r"INFO  http: listening addr=")
    e.config_path.write_text(minimal_config("log:\n  format: json\n"))
    e.send(signal.SIGHUP)
    # The new format is in force at once: the "reloaded" line is JSON.
    line = e.wait_log(r'\{[^\n]*"msg":"reloaded"[^\n]*\}').group(0)
    rec = json.loads(line)
    assert rec["level"] == "info" and rec["subsys"] == "config"
    assert rec["generation"] == "1"
    assert rec["file"] == str(e.config_path)
    assert set(rec) >= {"ts", "level", "subsys", "msg", "file"}
    assert e.request("GET", "/healthz")[0] == 200


def test_sighup_with_a_bad_file_keeps_the_old_one(engine):
    e = engine(minimal_config())
    e.config_path.write_text(minimal_config("server:\n  max_body: lots\n"))
    e.send(signal.SIGHUP)
    e.wait_log(r"reload failed; the running configuration is unchanged")
    assert (f"{e.config_path}:5:1: error: duplicate key 'server' (first "
            "defined at line 1); remove one of them") in e.log()
    status, _, _ = e.request("GET", "/healthz")
    assert status == 200


def test_sighup_reports_every_error_with_position(engine):
    e = engine(minimal_config())
    e.config_path.write_text(THREE_MISTAKES)
    e.send(signal.SIGHUP)
    e.wait_log(r"reload failed")
    log = e.log()
    assert f"{e.config_path}:3:13: error: server.max_body" in log
    assert f"{e.config_path}:5:3: error: storage.durabilty" in log
    assert f"{e.config_path}:7:10: error: routes[0].to[0]" in log
    assert e.request("GET", "/healthz")[0] == 200


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_stop_signal_exits_zero_promptly(engine, sig):
    e = engine(minimal_config())
    # An idle keep-alive connection and one stuck mid-headers must not hold
    # the shutdown back.
    idle = socket.create_connection(("127.0.0.1", e.port))
    idle.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert idle.recv(4096).startswith(b"HTTP/1.1 200 OK")
    partial = socket.create_connection(("127.0.0.1", e.port))
    partial.sendall(b"GET /healthz HTTP/1.1\r\nHost:")
    time.sleep(0.1)
    assert e.stop(sig) == 0
    log = e.log()
    assert "shutting down" in log and "stopped" in log
    # Nothing was left to wait for, so the grace period never ran out.
    assert "grace period over" not in log
    idle.close()
    partial.close()


def test_json_log_lines_are_json(engine):
    e = engine(minimal_config("log:\n  format: json\n  level: debug\n"))
    e.stop()
    lines = [l for l in e.log().splitlines() if l.strip()]
    assert lines, "no log output"
    for line in lines:
        rec = json.loads(line)
        assert rec["ts"].endswith("Z")
        assert rec["level"] in ("debug", "info", "warn", "error")
    msgs = [json.loads(l)["msg"] for l in lines]
    assert "listening" in msgs and "stopped" in msgs
