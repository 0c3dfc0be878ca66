#!/usr/bin/python3
"""make-v2-golden.py - writes v2-golden.db: a store of schema version 2, as hookline's v2 store left it.

The schema is made by running the 0 -> 1 and 1 -> 2 entries of `migrations[]`
in engine/store.c, read from that file, the way the store runs them (each in
its own BEGIN IMMEDIATE ... PRAGMA user_version = N; COMMIT), on a fresh file
set up as the store sets one up (auto_vacuum incremental, WAL). The rows are
what a v2 store holds after intake and normalization: four webhooks (two
normalized, one unparsed, one still received) and the canonical events of
the normalized ones, with the normalization cursor after the third.

    /usr/bin/python3 tests/data/store/make-v2-golden.py tests/data/store/v2-golden.db

Made once; never remake it. tests/unit/test_store.c's
test_golden_v2_opens_and_migrates checks every value written here.
"""

import os
import re
import sqlite3
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
STORE_C = os.path.join(HERE, "..", "..", "..", "engine", "store.c")
GOLDEN_MS = 1717243200000  # 2024-06-01T12:00:00Z


def migrations(path):
    """The C string literals of migrations[], one SQL text per entry."""
    src = open(path, encoding="utf-8").read()
    start = src.index("static const char *const migrations[] = {")
    body = src[src.index("{", start) + 1 : src.index("\n};", start)]
    body = re.sub(r"/\*.*?\*/", "", body, flags=re.S)
    out, cur, i = [], [], 0
    while i < len(body):
        c = body[i]
        if c == '"':
            j, lit = i + 1, []
            while body[j] != '"':
                if body[j] == "\\":
                    esc = body[j + 1]
                    lit.append({"n": "\n", "t": "\t"}.get(esc, esc))
                    j += 2
                else:
                    lit.append(body[j])
                    j += 1
            cur.append("".join(lit))
            i = j + 1
        elif c == ",":
            out.append("".join(cur))
            cur = []
            i += 1
        else:
            i += 1
    if cur:
        out.append("".join(cur))
    return out


EVENTS = [
    # seq, id, tenant, source, received_at, correlation_id, content_type,
    # headers, body, idem_key, state, state_reason
    (1, "01HZ9V2GLD0000000000000001", "acme", "github", GOLDEN_MS,
     "corr-v2-1", "application/json",
     '{"x-github-event":"push"}', b'{"ref":"refs/heads/main"}',
     "v2-delivery-1", "normalized", None),
    (2, "01HZ9V2GLD0000000000000002", "acme", "alertmanager", GOLDEN_MS + 1,
     "corr-v2-2", "application/json", '{}',
     b'{"alerts":[{"labels":{"alertname":"DiskFull"}},'
     b'{"labels":{"alertname":"HighCPU"}}]}',
     None, "normalized", None),
    (3, "01HZ9V2GLD0000000000000003", "beta", "alertmanager", GOLDEN_MS + 2,
     "corr-v2-3", "application/json", '{}', b'{"no":"alerts"}', None,
     "unparsed", "no list at /alerts"),
    (4, "01HZ9V2GLD0000000000000004", "acme", "github", GOLDEN_MS + 3,
     "corr-v2-4", None, '{}', b"\x00\xffnot json", None, "received", None),
]

CANONICAL = [
    # id, event_id, tenant, source, type, severity, dedupkey, time, raw_ptr,
    # body
    ("01HZ9V2CAN0000000000000001", "01HZ9V2GLD0000000000000001", "acme",
     "github", "push", "info", None, "2024-06-01T12:00:00.000Z", "",
     '{"specversion":"1.0","id":"01HZ9V2CAN0000000000000001",'
     '"type":"push"}'),
    ("01HZ9V2CAN0000000000000002", "01HZ9V2GLD0000000000000002", "acme",
     "alertmanager", "alert", "critical", "DiskFull",
     "2024-06-01T12:00:00.001Z", "/alerts/0",
     '{"specversion":"1.0","id":"01HZ9V2CAN0000000000000002",'
     '"type":"alert","dedupkey":"DiskFull"}'),
    ("01HZ9V2CAN0000000000000003", "01HZ9V2GLD0000000000000002", "acme",
     "alertmanager", "alert", "warning", "HighCPU",
     "2024-06-01T12:00:00.001Z", "/alerts/1",
     '{"specversion":"1.0","id":"01HZ9V2CAN0000000000000003",'
     '"type":"alert","dedupkey":"HighCPU"}'),
]


def main():
    if len(sys.argv) != 2:
        sys.exit("usage: make-v2-golden.py OUT.db")
    path = sys.argv[1]
    if os.path.exists(path):
        sys.exit(f"{path} exists; never remake a golden file")
    steps = migrations(STORE_C)
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA auto_vacuum = INCREMENTAL")
    assert db.execute("PRAGMA journal_mode = WAL").fetchone()[0] == "wal"
    for v in (0, 1):
        db.executescript(f"BEGIN IMMEDIATE;{steps[v]};"
                         f"PRAGMA user_version = {v + 1};COMMIT;")
    db.execute("BEGIN IMMEDIATE")
    db.executemany(
        "INSERT INTO events (seq, id, tenant, source, received_at, "
        "correlation_id, content_type, headers, body, idem_key, state, "
        "state_reason) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", EVENTS)
    db.executemany(
        "INSERT INTO canonical (id, event_id, tenant, source, type, "
        "severity, dedupkey, time, raw_ptr, body) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", CANONICAL)
    db.execute("UPDATE normalize_cursor SET seq = 3 WHERE id = 1")
    db.execute("COMMIT")
    assert db.execute("PRAGMA user_version").fetchone()[0] == 2
    assert db.execute("PRAGMA application_id").fetchone()[0] == 0x484C4E31
    assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    db.close()
    for tail in ("-wal", "-shm"):
        if os.path.exists(path + tail):
            sys.exit(f"{path}{tail} is left over")
    print(f"golden: wrote {path}")


if __name__ == "__main__":
    main()
