#!/usr/bin/python3
"""make bench, end to end: webhooks into hookline (durability full), through
the webhook connector, to a local nginx answering 200.

1. throughput: wrk posts as fast as it can for BENCH_SECONDS; then we wait
   until every accepted event is delivered. Delivered events per second =
   events / (last delivery - first receipt), and the drain rate after intake
   stopped.
2. latency: a paced sender posts at a fixed moderate rate; received-to-
   delivered p50/p99 come from the store (events.received_at to the end of
   the delivering attempt).

Usage: e2e.py BIN WORKDIR (called by tests/bench/run).
"""
import http.client
import json
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time

BIN, WORK = sys.argv[1], sys.argv[2]
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
RATE = int(os.environ.get("BENCH_RATE", "1000"))
NGINX = "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else "nginx"
BODY = json.dumps({"title": "disk almost full on db-7", "severity": "warning",
                   "text": "x" * 1200, "labels": {"host": "db-7"}}).encode()


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def wait_port(port, timeout=10):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)
    sys.exit(f"bench: nothing listens on port {port}")


def start_nginx():
    port = free_port()
    d = os.path.join(WORK, "sink")
    os.makedirs(os.path.join(d, "logs"), exist_ok=True)
    with open(os.path.join(d, "nginx.conf"), "w") as f:
        f.write(f"""worker_processes 1;
daemon off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log warn;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    client_body_temp_path {d}/body;
    keepalive_requests 1000000;
    server {{
        listen 127.0.0.1:{port};
        location / {{ return 200 '{{"ok":true}}'; }}
    }}
}}
""")
    p = subprocess.Popen([NGINX, "-p", d, "-c", os.path.join(d, "nginx.conf")])
    wait_port(port)
    return p, port


def start_hookline(name, sink_port):
    port = free_port()
    cfg = os.path.join(WORK, f"{name}.yaml")
    db = os.path.join(WORK, f"{name}.db")
    with open(cfg, "w") as f:
        f.write(f"""\
server: {{ listen: 127.0.0.1:{port}, max_connections: 1000 }}
storage: {{ path: {db}, durability: full }}
log: {{ level: warn }}
outbound: {{ allow_networks: [127.0.0.0/8] }}
sources:
  bench:
    kind: generic
    verify: {{ bearer: {{ tokens: [bench-token] }} }}
connectors:
  sink:
    plugin: webhook
    url: http://127.0.0.1:{sink_port}/in
    policy: bulk
policies:
  bulk:
    max_in_flight: {os.environ.get("BENCH_INFLIGHT", "64")}
routes:
  - to: [sink]
""")
    p = subprocess.Popen([BIN, "run", "-c", cfg])
    wait_port(port)
    return p, port, db


def count(db, sql):
    c = sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=10)
    try:
        return c.execute(sql).fetchone()
    finally:
        c.close()


def wait_delivered(db, want, timeout=300):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        (n,) = count(db, "SELECT count(*) FROM deliveries WHERE state = 'delivered'")
        if n >= want:
            return n
        time.sleep(0.1)
    return n


def peak_rss_mib(pid):
    with open(f"/proc/{pid}/status") as f:
        kb = int(re.search(r"VmHWM:\s+(\d+)", f.read()).group(1))
    return kb / 1024


def throughput(sink_port):
    p, port, db = start_hookline("e2e", sink_port)
    try:
        subprocess.run(["wrk", "-t2", "-c64", f"-d{SECONDS}s", "--timeout", "5s",
                        "-s", "tests/bench/post.lua",
                        f"http://127.0.0.1:{port}/v1/hooks/bench"],
                       check=True, capture_output=True)
        t_stop = time.time() * 1000
        (accepted,) = count(db, "SELECT count(*) FROM events")
        delivered = wait_delivered(db, accepted)
        rss = peak_rss_mib(p.pid)
    finally:
        p.terminate()
        p.wait()
    first, last = count(db, "SELECT (SELECT min(received_at) FROM events), "
                            "(SELECT max(started_at + duration_ms) FROM attempts)")
    (during,) = count(db, f"SELECT count(*) FROM attempts WHERE started_at <= {t_stop}")
    span = max(last - first, 1) / 1000
    drain = max(last - t_stop, 1) / 1000
    return {"accepted": accepted, "delivered": delivered, "span_s": span,
            "rate": delivered / span, "during": during,
            "drain_rate": (delivered - during) / drain, "rss": rss}


def paced_sender(port, rate, n, errors):
    """One keep-alive connection posting n events at rate per second."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    hdrs = {"Authorization": "Bearer bench-token",
            "Content-Type": "application/json"}
    t0 = time.monotonic()
    for i in range(n):
        due = t0 + i / rate
        now = time.monotonic()
        if due > now:
            time.sleep(due - now)
        conn.request("POST", "/v1/hooks/bench", body=BODY, headers=hdrs)
        r = conn.getresponse()
        r.read()
        if r.status != 202:
            errors.append(r.status)
    conn.close()


def latency(sink_port, senders=4):
    p, port, db = start_hookline("lat", sink_port)
    try:
        per = RATE * SECONDS // senders
        errors = []
        threads = [threading.Thread(target=paced_sender,
                                    args=(port, RATE / senders, per, errors))
                   for _ in range(senders)]
        t0 = time.monotonic()
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        n = per * senders
        sent_rate = n / (time.monotonic() - t0)
        if errors:
            sys.exit(f"bench: {len(errors)} posts were refused: {errors[:5]}")
        wait_delivered(db, n)
    finally:
        p.terminate()
        p.wait()
    c = sqlite3.connect(db)
    lat = sorted(r[0] for r in c.execute(
        "SELECT a.started_at + a.duration_ms - e.received_at FROM attempts a "
        "JOIN deliveries d ON d.id = a.delivery_id JOIN events e ON "
        "e.id = d.event_id WHERE a.outcome = 'delivered'"))
    c.close()

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))]
    return {"n": len(lat), "rate": sent_rate, "p50": pct(0.5), "p99": pct(0.99),
            "max": lat[-1]}


def main():
    nginx, sink_port = start_nginx()
    try:
        t = throughput(sink_port)
        lat = latency(sink_port)
    finally:
        nginx.terminate()
        nginx.wait()
    print(f"\nend to end: wrk -t2 -c64 -d{SECONDS}s into hookline (durability "
          "full), webhook connector to nginx answering 200, max_in_flight 64")
    print(f"  accepted {t['accepted']}, delivered {t['delivered']} in "
          f"{t['span_s']:.1f} s from first receipt to last delivery: "
          f"{t['rate']:.0f} delivered/s")
    print(f"  delivered while intake ran: {t['during']}; drain afterwards: "
          f"{t['drain_rate']:.0f} delivered/s; peak RSS {t['rss']:.1f} MiB")
    print(f"received-to-delivered at {lat['rate']:.0f} events/s for {SECONDS} s "
          f"({lat['n']} events): p50 {lat['p50']} ms, p99 {lat['p99']} ms, "
          f"max {lat['max']} ms")


if __name__ == "__main__":
    main()
