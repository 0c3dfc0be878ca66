"""Connector plugins as a user meets them: `hookline check` and `hookline
run` refuse a plugin that is missing, not a connector, built for another
ABI, or configured wrongly, naming the file, the instance and the problem;
`hookline connectors` prints every plugin's keys."""
from pathlib import Path

from conftest import BIN, ROOT, run_cli

PLUGINS = ROOT / "build" / "test" / "plugins"
CONNECTORS = Path(BIN).resolve().parent / "connectors"


def write(tmp_path, connectors):
    f = tmp_path / "hookline.yaml"
    f.write_text(f"""\
server: {{ listen: 127.0.0.1:0 }}
storage: {{ path: ./hookline.db }}
connectors_path: [{PLUGINS}, {CONNECTORS}]
connectors:
{connectors}
routes:
  - to: [x]
""")
    return f


def errors(p):
    return [l for l in p.stderr.splitlines() if ": error: " in l]


def check_one(tmp_path, section):
    f = write(tmp_path, "  x:\n" + section)
    p = run_cli("check", "-c", str(f))
    assert p.returncode == 1, p.stdout
    return f, errors(p)


def test_wrong_abi_names_the_file_and_both_versions(tmp_path):
    f, errs = check_one(tmp_path, "    plugin: bad_abi\n")
    assert errs == [
        f"{f}:6:13: error: connectors.x: {PLUGINS}/bad_abi.so was built for "
        "connector ABI 2.0, and this hookline loads ABI 1.x: rebuild it "
        "against this hookline's hookline/connector.h"]


def test_missing_entry_symbol(tmp_path):
    f, errs = check_one(tmp_path, "    plugin: no_entry\n")
    assert errs == [
        f"{f}:6:13: error: connectors.x: {PLUGINS}/no_entry.so is not a "
        "hookline connector: it exports no hookline_connector_entry function "
        "(define one with HLC_DEFINE_CONNECTOR from hookline/connector.h)"]


def test_descriptor_smaller_than_the_abi(tmp_path):
    f, errs = check_one(tmp_path, "    plugin: short_desc\n")
    assert errs == [
        f"{f}:6:13: error: connectors.x: {PLUGINS}/short_desc.so: its "
        "descriptor is 16 bytes, less than ABI 1.0's 72: the plugin was not "
        "built with hookline/connector.h"]


def test_missing_plugin_lists_where_it_looked(tmp_path):
    f, errs = check_one(tmp_path, "    plugin: nothere\n")
    assert errs == [
        f"{f}:6:13: error: connectors.x: no connector plugin 'nothere': "
        f"nothere.so is not in {PLUGINS}, {CONNECTORS} (set connectors_path "
        "to the folder that holds it; `hookline connectors` lists what is "
        "there)"]


def test_keys_checked_against_the_plugins_table(tmp_path):
    f, errs = check_one(tmp_path, """\
    plugin: picky
    chanel: x
    mode: medium
    retries: many
    wait: soon
    text: "{{#a}}"
    auth: { user: bob }
""")
    assert errs == [
        f"{f}:7:5: error: connectors.x.chanel: unknown key 'chanel'; did you "
        "mean 'channel'?",
        f"{f}:8:11: error: connectors.x.mode: 'medium' is not one of fast|slow",
        f"{f}:9:14: error: connectors.x.retries: 'many' is not a whole number",
        f"{f}:10:11: error: connectors.x.wait: 'soon' is not a duration; "
        "write e.g. 500ms, 15s, 2m",
        f"{f}:11:11: error: connectors.x.text: the Mustache template does not "
        "compile: line 1, column 7: unclosed section 'a' opened at line 1, "
        "column 1",
        f"{f}:12:11: error: connectors.x.auth: missing required key 'token' "
        "(a token, required when auth is given)",
        f"{f}:6:5: error: connectors.x: missing required key 'channel' "
        "(where messages go)",
    ]


def test_connector_refusing_its_config_points_at_the_key(tmp_path):
    f, errs = check_one(tmp_path, """\
    plugin: picky
    channel: general
    auth: { token: t }
""")
    assert errs == [f"{f}:7:14: error: connectors.x.channel: 'general' must "
                    "start with '#'"]


def test_connector_refusing_without_a_key(tmp_path):
    f, errs = check_one(tmp_path, """\
    plugin: picky
    channel: "#ops"
    retries: 11
    auth: { token: t }
""")
    assert errs == [f"{f}:6:5: error: connectors.x: the picky connector "
                    "refused its configuration: at most 10 retries"]


def test_webhook_checks_its_secrets(tmp_path):
    f, errs = check_one(tmp_path, """\
    plugin: webhook
    url: https://hooks.example/in
    signing: { standard_webhooks: { secret: not-a-whsec } }
""")
    assert errs == [
        f"{f}:8:45: error: connectors.x.signing.standard_webhooks.secret: "
        "not a Standard Webhooks secret: expected whsec_ and base64"]


def test_run_refuses_to_start_with_a_bad_plugin(tmp_path):
    f = write(tmp_path, "  x:\n    plugin: bad_abi\n")
    p = run_cli("run", "-c", str(f), timeout=20)
    assert p.returncode == 1
    assert "was built for connector ABI 2.0" in p.stderr
    assert "hookline did not start" in p.stderr


def test_good_plugins_pass_check(tmp_path):
    f = write(tmp_path, """\
  x:
    plugin: picky
    channel: "#ops"
    wait: 2s
    text: "{{data.title}}"
    auth: { token: t, user: bob }
  hook:
    plugin: webhook
    url: https://hooks.example/in
    signing: { hmac: { secret: s3cret, algorithm: sha512 } }
""")
    p = run_cli("check", "-c", str(f))
    assert p.returncode == 0, p.stderr
    assert "2 connectors" in p.stdout


def test_connectors_command_prints_keys():
    p = run_cli("connectors", "webhook")
    assert p.returncode == 0, p.stderr
    out = p.stdout
    assert "webhook 1.0.0" in out
    assert f"file: {CONNECTORS}/webhook.so" in out
    for key in ("signing.standard_webhooks.secrets", "signing.hmac.algorithm",
                "auth.bearer", "tls.client_cert", "body"):
        assert f"    {key} " in out
    assert "default sha256; one of sha1|sha256|sha512" in out


def test_connectors_command_unknown_name():
    p = run_cli("connectors", "nosuch")
    assert p.returncode == 1
    assert "no connector plugin named nosuch found in" in p.stderr


def test_install_gives_an_sdk_for_out_of_tree_connectors(tmp_path):
    """make install puts the header and hookline-connector.pc in place; a
    connector built with only them loads into the installed engine."""
    import os
    import subprocess
    prefix = tmp_path / "prefix"
    subprocess.run(["make", "-s", "install", f"PREFIX={prefix}"], cwd=ROOT,
                   check=True, capture_output=True, timeout=300)
    assert (prefix / "include/hookline/connector.h").is_file()
    assert (prefix / "lib/hookline/connectors/webhook.so").is_file()
    env = dict(os.environ, PKG_CONFIG_PATH=str(prefix / "lib/pkgconfig"))
    cflags = subprocess.run(["pkg-config", "--cflags", "hookline-connector"],
                            env=env, check=True, capture_output=True,
                            text=True).stdout.split()
    assert f"-I{prefix}/include" in cflags
    connectorsdir = subprocess.run(
        ["pkg-config", "--variable=connectorsdir", "hookline-connector"],
        env=env, check=True, capture_output=True, text=True).stdout.strip()
    assert connectorsdir == f"{prefix}/lib/hookline/connectors"
    out = tmp_path / "mine"
    out.mkdir()
    src = tmp_path / "picky.c"  # outside the source tree
    src.write_text((ROOT / "tests/plugins/picky.c").read_text())
    subprocess.run(["cc", "-std=c17", "-Wall", "-Werror", "-shared", *cflags,
                    "-o", str(out / "picky.so"), str(src)], check=True,
                   timeout=60)
    f = tmp_path / "hookline.yaml"
    f.write_text(f"""\
server: {{ listen: 127.0.0.1:0 }}
storage: {{ path: ./hookline.db }}
connectors_path: [{out}, {connectorsdir}]
connectors:
  mine: {{ plugin: picky, channel: "#ops", auth: {{ token: t }} }}
  hook: {{ plugin: webhook, url: "https://hooks.example/in" }}
routes:
  - to: [mine, hook]
""")
    p = subprocess.run([str(prefix / "bin/hookline"), "check", "-c", str(f)],
                       capture_output=True, text=True, timeout=30)
    assert p.returncode == 0, p.stderr
    assert "2 connectors" in p.stdout


EVENT = {"specversion": "1.0", "id": "01J0EVENT000000000000000001",
         "source": "hookline/demo", "type": "alert.firing",
         "time": "2026-11-28T06:00:00Z", "datacontenttype": "application/json",
         "tenant": "default", "severity": "critical", "correlationid": "corr-1",
         "data": {"title": "disk full", "status": "firing",
                  "text": "token ghp_A1b2C3d4E5f6G7h8I9j0K1l2M3n4O5p6Q7r8",
                  "labels": {"host": "db-1"}}}


def test_render_shows_the_request_without_sending(tmp_path):
    import json
    ev = tmp_path / "event.json"
    ev.write_text(json.dumps(EVENT))
    f = write(tmp_path, """\
  x:
    plugin: webhook
    url: https://hooks.example/in
    policy: masked
    body: '{"text": "[{{severity}}] {{data.title}}: {{data.text}}"}'
    signing: { hmac: { secret: s3cret } }
  skipper: { plugin: picky, channel: "#ops", auth: { token: t } }
policies:
  masked: { redact: [secrets] }""")
    p = run_cli("render", "-c", str(f), "--delivery-id",
                "01J0DELIVERY00000000000001", "--now", "1790000000000", "x",
                str(ev))
    assert p.returncode == 0, p.stderr
    out = json.loads(p.stdout)
    assert (out["kind"], out["method"], out["url"]) == (
        "http", "POST", "https://hooks.example/in")
    body = out["body"]
    assert json.loads(body) == {"text": "[critical] disk full: token [REDACTED]"}
    headers = dict(out["headers"])
    assert headers["Idempotency-Key"] == "01J0DELIVERY00000000000001"
    assert headers["X-Request-ID"] == "corr-1"
    import hashlib
    import hmac
    assert headers["X-Hub-Signature-256"] == "sha256=" + hmac.new(
        b"s3cret", body.encode(), hashlib.sha256).hexdigest()
    # From standard input; a connector that skips; an unknown connector.
    p = run_cli("render", "-c", str(f), "skipper", "-", input=json.dumps(EVENT))
    assert (p.returncode, p.stdout.strip()) == (0, '{"skip":true}')
    p = run_cli("render", "-c", str(f), "nosuch", str(ev))
    assert p.returncode == 1
    assert f"no connector named 'nosuch' in {f}" in p.stderr
    bad = tmp_path / "bad.json"
    bad.write_text("{nope")
    p = run_cli("render", "-c", str(f), "x", str(bad))
    assert p.returncode == 1 and f"{bad}:1:" in p.stderr
