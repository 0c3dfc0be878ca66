"""The durability promise: every webhook answered 202 is in the store, once,
with its body intact, even when the process is killed the next instant."""
import http.client
import json
import signal
import sqlite3
import threading

import pytest

from conftest import Engine

CONFIG = """\
server:
  listen: 127.0.0.1:0
storage:
  path: ./crash.db
  durability: {durability}
sources:
  demo:
    kind: generic
    verify: {{ bearer: {{ tokens: [crash-token] }} }}
"""

SENDERS = 8
KILL_AFTER = 1000  # acknowledged events before the kill


def sender(port, n, acked, lock, stop):
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    seq = 0
    try:
        while not stop.is_set():
            body = ('{"title":"sender %d event %d","pad":"%s"}'
                    % (n, seq, "x" * (seq % 97))).encode()
            conn.request("POST", "/v1/hooks/demo", body=body,
                         headers={"Authorization": "Bearer crash-token",
                                  "Content-Type": "application/json"})
            resp = conn.getresponse()
            payload = resp.read()
            if resp.status == 202:
                with lock:
                    acked[json.loads(payload)["id"]] = body
            seq += 1
    except (OSError, http.client.HTTPException):
        pass  # the process was killed under us
    finally:
        conn.close()


@pytest.mark.parametrize("durability", ["full", "normal"])
def test_kill9_mid_stream_loses_nothing_acknowledged(tmp_path, durability):
    path = tmp_path / "hookline.yaml"
    path.write_text(CONFIG.format(durability=durability))
    e = Engine(path, cwd=tmp_path).start()
    acked, lock, stop = {}, threading.Lock(), threading.Event()
    threads = [threading.Thread(target=sender,
                                args=(e.port, n, acked, lock, stop))
               for n in range(SENDERS)]
    for t in threads:
        t.start()
    # Kill once enough events were acknowledged, while senders still send.
    while True:
        with lock:
            if len(acked) >= KILL_AFTER:
                break
        assert e.proc.poll() is None, e.log()
        threads[0].join(0.01)
    e.proc.send_signal(signal.SIGKILL)
    e.proc.wait(timeout=20)
    stop.set()
    for t in threads:
        t.join(timeout=20)
    e.log_file.close()

    # A restart recovers the WAL and serves again.
    again = Engine(path, cwd=tmp_path).start()
    assert again.request("GET", "/healthz")[0] == 200
    assert again.stop() == 0

    db = sqlite3.connect(tmp_path / "crash.db")
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    rows = {}
    for rid, body in db.execute("SELECT id, body FROM events"):
        assert rid not in rows, f"event {rid} stored twice"
        rows[rid] = bytes(body)
    db.close()
    assert len(acked) >= KILL_AFTER
    missing = [i for i in acked if i not in rows]
    assert not missing, f"{len(missing)} acknowledged events lost: {missing[:5]}"
    damaged = [i for i, b in acked.items() if rows[i] != b]
    assert not damaged, f"bodies differ for {damaged[:5]}"
