#!/usr/bin/python3
"""make bench: hookline against a peer in the same run on the same machine
(only ratios travel between machines). Prints one report:

  1. intake: wrk against nginx answering a static 202, and against hookline
     with durability full;
  2. end to end: as fast as possible through the webhook connector to nginx
     answering 200, then received-to-delivered latency at a paced rate;
  3. a backlog of a million accepted webhooks that cannot be delivered yet
     (their connector paused): hookline's memory, the store's size, and how
     long the admin API and /metrics take with it;
  4. Prometheus Alertmanager (where installed) taking alerts from wrk and
     notifying nginx, against hookline taking the same alerts as
     Alertmanager's webhook and delivering them to nginx;
  5. Node-RED (installed with npm into build/bench/node-red when missing) with
     an http in -> http response 202 + http request flow, on the load of 1-2;
  then a summary table.

Usage: bench.py HOOKLINE_BIN WORKDIR (tests/bench/run makes WORKDIR and
removes it). Runs from the top of the source tree.

Everything listens on free loopback ports. Every process started here is
stopped when its part ends, on the way out (also on SIGINT and SIGTERM), and
by the kernel should this script die (PR_SET_PDEATHSIG); their ids are kept
in WORKDIR/pids for tests/bench/run's trap as well.

Environment: BENCH_SECONDS (10; each wrk run), BENCH_RATE (1000; the paced
load), BENCH_BACKLOG (1000000), BENCH_INFLIGHT (64; the webhook connector's
max_in_flight), BENCH_DRAIN_CAP (120; seconds to wait for deliveries),
BENCH_NODE_RED (auto, or skip: never run npm), BENCH_ALERTMANAGER (its
binary), BENCH_ONLY (the parts to run, e.g. "1,3").
"""
import contextlib
import ctypes
import datetime
import http.client
import json
import os
import re
import resource
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
import traceback

BIN_SRC, WORK = sys.argv[1], sys.argv[2]
SECONDS = int(os.environ.get("BENCH_SECONDS", "10"))
RATE = int(os.environ.get("BENCH_RATE", "1000"))
BACKLOG = int(os.environ.get("BENCH_BACKLOG", "1000000"))
INFLIGHT = int(os.environ.get("BENCH_INFLIGHT", "64"))
DRAIN_CAP = float(os.environ.get("BENCH_DRAIN_CAP", "120"))
ONLY = {s.strip() for s in os.environ.get("BENCH_ONLY", "").split(",")
        if s.strip()}
THREADS, CONNS = 2, 64
NGINX = "/usr/sbin/nginx" if os.path.exists("/usr/sbin/nginx") else "nginx"
ALERTMANAGER = os.environ.get("BENCH_ALERTMANAGER",
                              "/usr/bin/prometheus-alertmanager")
NODE_RED_DIR = os.path.join("build", "bench", "node-red")
NPM_TIMEOUT = 240
ADMIN = "bench-admin-token-5b0e93d71c24"
BODY = json.dumps({"title": "disk almost full on db-7", "severity": "warning",
                   "text": "x" * 1200, "labels": {"host": "db-7"}}).encode()


class BenchError(Exception):
    pass


# --- processes ---------------------------------------------------------------

_libc = ctypes.CDLL(None, use_errno=True)


def _die_with_parent():
    # PR_SET_PDEATHSIG: SIGTERM to the child when this process goes away.
    _libc.prctl(1, signal.SIGTERM, 0, 0, 0)


def _starttime(pid):
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class Procs:
    """Every process this script starts, so that none outlives it."""

    def __init__(self, pidfile):
        self.live = []
        self.pidfile = pidfile

    def spawn(self, argv, log=None, stdout=None, env=None):
        out = open(log, "ab") if log else subprocess.DEVNULL
        try:
            p = subprocess.Popen(argv, stdin=subprocess.DEVNULL,
                                 stdout=stdout if stdout is not None else out,
                                 stderr=out, env=env,
                                 preexec_fn=_die_with_parent)
        finally:
            if log:
                out.close()
        self.live.append(p)
        self._write()
        return p

    def stop(self, p, timeout=30):
        """SIGTERM, then SIGKILL after timeout; returns seconds to exit."""
        t0 = time.monotonic()
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
        if p in self.live:
            self.live.remove(p)
            self._write()
        return time.monotonic() - t0

    def stop_all(self):
        for p in reversed(list(self.live)):
            self.stop(p, timeout=10)

    @contextlib.contextmanager
    def scope(self):
        """Stops, on the way out, what was started inside."""
        before = set(self.live)
        try:
            yield
        finally:
            for p in reversed(list(self.live)):
                if p not in before:
                    self.stop(p)

    def _write(self):
        lines = []
        for p in self.live:
            st = _starttime(p.pid)
            if st:
                lines.append(f"{p.pid} {st}\n")
        tmp = self.pidfile + ".tmp"
        with open(tmp, "w") as f:
            f.writelines(lines)
        os.replace(tmp, self.pidfile)


procs = Procs(os.path.join(WORK, "pids"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def connects(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def tail(path, n=15):
    try:
        with open(path, errors="replace") as f:
            return "".join(f.readlines()[-n:]).rstrip()
    except OSError:
        return "(no log)"


def start_listener(name, make, log, ready=None, timeout=30, tries=5):
    """make(port) starts a process listening on port; retried on a new port
    when it dies (another process took the port first). ready(port) is a
    further check once the port accepts connections."""
    for _ in range(tries):
        port = free_port()
        p = make(port)
        deadline = time.monotonic() + timeout
        up = False
        while time.monotonic() < deadline and p.poll() is None:
            if connects(port) and (ready is None or ready(port)):
                up = True
                break
            time.sleep(0.05)
        if up:
            time.sleep(0.3)        # a process that lost the port exits now
            if p.poll() is None:
                return p, port
        procs.stop(p)
    raise BenchError(f"{name} did not start; the end of {log}:\n{tail(log)}")


def mem_kb(pid):
    """VmHWM (peak) and VmRSS (now) of a process, in KiB."""
    out = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(("VmHWM:", "VmRSS:")):
                k, v = line.split()[:2]
                out[k[:-1]] = int(v)
    return out


def http_request(port, method, path, body=None, headers=None, timeout=30):
    c = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        c.request(method, path, body=body, headers=headers or {})
        r = c.getresponse()
        return r.status, r.read()
    finally:
        c.close()


def timed_get(url, token=None):
    """(status, seconds) of one GET, as curl -w '%{time_total}' reports it."""
    if shutil.which("curl"):
        argv = ["curl", "-s", "-o", "/dev/null", "-w",
                "%{http_code} %{time_total}", "--max-time", "120", url]
        if token:
            argv += ["-H", f"Authorization: Bearer {token}"]
        out = subprocess.run(argv, capture_output=True, text=True).stdout
        code, secs = out.split()
        return int(code), float(secs)
    m = re.match(r"http://127\.0\.0\.1:(\d+)(/.*)", url)
    t0 = time.perf_counter()
    status, _ = http_request(int(m.group(1)), "GET", m.group(2),
                             headers={"Authorization": f"Bearer {token}"}
                             if token else {}, timeout=120)
    return status, time.perf_counter() - t0


def post_hook(port, path="/v1/hooks/bench"):
    t0 = time.perf_counter()
    status, _ = http_request(port, "POST", path, BODY, {
        "Authorization": "Bearer bench-token",
        "Content-Type": "application/json"})
    return status, time.perf_counter() - t0


# --- load --------------------------------------------------------------------

def wrk(url, script="post.lua", args=(), seconds=None, until=None):
    """One wrk run (-t2 -c64); returns its RESULT line as numbers, plus the
    wall-clock start t0. until(): polled while wrk runs; when true, wrk is
    stopped (SIGINT: it prints its summary for the time it ran)."""
    seconds = seconds or SECONDS
    argv = ["wrk", f"-t{THREADS}", f"-c{CONNS}", f"-d{seconds}s",
            "--timeout", "5s", "-s", f"tests/bench/{script}", url]
    if args:
        argv += ["--", *map(str, args)]
    t0 = time.time()
    p = procs.spawn(argv, log=os.path.join(WORK, "wrk.log"),
                    stdout=subprocess.PIPE)
    try:
        if until:
            while p.poll() is None:
                if until():
                    p.send_signal(signal.SIGINT)
                    break
                time.sleep(0.2)
        out, _ = p.communicate(timeout=seconds + 60)
    finally:
        procs.stop(p)
    m = re.search(r"^RESULT (.*)$", out.decode(errors="replace"), re.M)
    if not m:
        raise BenchError(f"wrk printed no result (exit {p.returncode}):\n"
                         f"{out.decode(errors='replace')}"
                         f"{tail(os.path.join(WORK, 'wrk.log'))}")
    r = {k: float(v) for k, v in
         (kv.split("=", 1) for kv in m.group(1).split())}
    r["t0"], r["t1"] = t0, time.time()
    r["ok"] = r["requests"] - r["non2xx"]
    return r


# --- nginx -------------------------------------------------------------------

def nofile_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    return hard if hard != resource.RLIM_INFINITY else 65536


def start_nginx(name, workers, http_body):
    d = os.path.join(WORK, name)
    os.makedirs(os.path.join(d, "logs"), exist_ok=True)
    conf = os.path.join(d, "nginx.conf")
    log = os.path.join(d, "logs", "error.log")
    files = min(nofile_limit(), 65536)

    def make(port):
        with open(conf, "w") as f:
            f.write(f"""worker_processes {workers};
worker_rlimit_nofile {files};
daemon off;
pid {d}/nginx.pid;
error_log {log} warn;
events {{ worker_connections {max(1024, files // 2)}; }}
http {{
    client_body_temp_path {d}/body;
    keepalive_requests 1000000;
{http_body.replace("@PORT@", str(port)).replace("@DIR@", d)}
}}
""")
        return procs.spawn([NGINX, "-p", d, "-c", conf], log=log)
    return start_listener(name, make, log)


class Sink:
    """nginx answering 200 to everything, logging each request's time (ms)
    and path, so deliveries are counted where they arrive."""

    def __init__(self):
        self.proc, self.port = start_nginx("sink", 1, """
    log_format sink '$msec $uri';
    access_log @DIR@/access.log sink buffer=256k flush=1s;
    server {
        listen 127.0.0.1:@PORT@;
        location / { return 200 '{"ok":true}'; }
    }""")
        self.log = os.path.join(WORK, "sink", "access.log")
        self.offset = 0
        self.counts, self.last = {}, {}

    def url(self, path):
        return f"http://127.0.0.1:{self.port}{path}"

    def poll(self):
        try:
            with open(self.log, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except FileNotFoundError:
            return
        end = data.rfind(b"\n") + 1
        self.offset += end
        for line in data[:end].splitlines():
            msec, _, path = line.decode(errors="replace").partition(" ")
            self.counts[path] = self.counts.get(path, 0) + 1
            self.last[path] = max(self.last.get(path, 0), float(msec))

    def count(self, path):
        self.poll()
        return self.counts.get(path, 0)

    def wait(self, path, want, base=0, idle=10.0, cap=None):
        """Waits until want requests beyond base reached path, or none came
        for idle seconds, or cap passed; returns (count, last arrival in
        epoch seconds, seconds waited)."""
        cap = DRAIN_CAP if cap is None else cap
        t0 = last_change = time.monotonic()
        seen = -1
        while True:
            n = self.count(path) - base
            now = time.monotonic()
            if n >= want or now - t0 > cap:
                break
            if n != seen:
                seen, last_change = n, now
            elif now - last_change > idle:
                break
            time.sleep(0.5)
        return n, self.last.get(path, 0.0), time.monotonic() - t0


# --- hookline ----------------------------------------------------------------

BIN = os.path.join(WORK, "bin", "hookline")


def snapshot_binary():
    """The engine and its connectors as they are now: a rebuild during the
    run does not change what is measured. Connectors are found beside the
    binary (connectors/)."""
    os.makedirs(os.path.join(WORK, "bin", "connectors"))
    shutil.copy2(BIN_SRC, BIN)
    src = os.path.join(os.path.dirname(BIN_SRC), "connectors")
    for so in os.listdir(src):
        if so.endswith(".so"):
            shutil.copy2(os.path.join(src, so),
                         os.path.join(WORK, "bin", "connectors", so))


class Hookline:
    def __init__(self, name, body, storage="", keep_db=False):
        """keep_db: start on the store a previous run of this name left."""
        self.name = name
        self.db = os.path.join(WORK, f"{name}.db")
        self.log = os.path.join(WORK, f"{name}.log")
        cfg = os.path.join(WORK, f"{name}.yaml")

        def make(port):
            if not keep_db:
                self.remove_db()
            with open(cfg, "w") as f:
                f.write(f"""\
server: {{ listen: 127.0.0.1:{port}, max_connections: 1000 }}
storage: {{ path: {self.db}, durability: full{storage} }}
log: {{ level: warn }}
admin: {{ token: {ADMIN} }}
outbound: {{ allow_networks: [127.0.0.0/8] }}
{body}""")
            return procs.spawn([BIN, "run", "-c", cfg], log=self.log)
        self.proc, self.port = start_listener(f"hookline ({name})", make,
                                              self.log, timeout=120)
        self.pid = self.proc.pid

    def url(self, path="/v1/hooks/bench"):
        return f"http://127.0.0.1:{self.port}{path}"

    def mem(self):
        return mem_kb(self.pid)

    def stop(self):
        secs = procs.stop(self.proc, timeout=120)
        if self.proc.returncode not in (0, -signal.SIGTERM):
            print(f"  note: hookline ({self.name}) exited with status "
                  f"{self.proc.returncode}; the end of its log:\n"
                  f"{tail(self.log)}")
        return secs

    def query(self, sql, args=()):
        c = sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=30)
        try:
            return c.execute(sql, args).fetchone()
        finally:
            c.close()

    def remove_db(self):
        for suffix in ("", "-wal", "-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(self.db + suffix)


GENERIC_SOURCE = """\
sources:
  bench:
    kind: generic
    verify: { bearer: { tokens: [bench-token] } }
"""


def sink_route(url, kind="generic"):
    return f"""\
sources:
  bench:
    kind: {kind}
    verify: {{ bearer: {{ tokens: [bench-token] }} }}
connectors:
  sink:
    plugin: webhook
    url: {url}
    policy: bulk
policies:
  bulk:
    max_in_flight: {INFLIGHT}
routes:
  - to: [sink]
"""


# --- report ------------------------------------------------------------------

def n0(x):
    return "-" if x is None else f"{x:,.0f}"


def ms(us):
    return "-" if us is None else f"{us / 1000:.2f} ms"


def mib(kb):
    return "-" if kb is None else f"{kb / 1024:.1f} MiB"


def table(headers, rows, indent="  "):
    cells = [list(map(str, headers))] + [[str(c) for c in r] for r in rows]
    widths = [max(len(r[i]) for r in cells) for i in range(len(headers))]
    for r in cells:
        line = [r[0].ljust(widths[0])]
        line += [c.rjust(w) for c, w in zip(r[1:], widths[1:])]
        print(indent + "  ".join(line).rstrip())


def section(title):
    print(f"\n{title}\n{'=' * len(title)}", flush=True)


RESULTS = {}


def part(key, title):
    """Runs a part: its processes stop when it ends; a failure is reported
    and the next part runs."""
    def wrap(fn):
        def run(*args):
            if ONLY and key not in ONLY:
                return None
            section(title)
            try:
                with procs.scope():
                    RESULTS[key] = fn(*args)
            except BenchError as e:
                print(f"  failed: {e}")
                RESULTS[key] = {"failed": str(e)}
            except Exception as e:  # a bug here, or something unforeseen
                where = traceback.extract_tb(e.__traceback__)[-1]
                print(f"  failed: {type(e).__name__}: {e} (bench.py line "
                      f"{where.lineno})")
                RESULTS[key] = {"failed": str(e)}
            sys.stdout.flush()
            return RESULTS[key]
        return run
    return wrap


# --- 1. intake ---------------------------------------------------------------

@part("1", "1. Intake: hookline against nginx answering a static 202")
def intake():
    nginx, nport = start_nginx("static", "auto", """
    access_log off;
    server {
        listen 127.0.0.1:@PORT@;
        location / { return 202 '{"id":"01J00000000000000000000000","status":"queued"}'; }
    }""")
    n = wrk(f"http://127.0.0.1:{nport}/v1/hooks/bench")
    procs.stop(nginx)

    h = Hookline("intake", GENERIC_SOURCE)
    r = wrk(h.url())
    rss = h.mem()["VmHWM"]
    h.stop()
    (stored,) = h.query("SELECT count(*) FROM events")
    h.remove_db()

    print(f"  wrk -t{THREADS} -c{CONNS} -d{SECONDS}s, POST of a "
          f"{r['body']:.0f}-byte JSON body with a bearer token, "
          f"{os.cpu_count()} cores\n")
    table(["", "req/s", "p50", "p99", "non-2xx", "errors"], [
        ["nginx (static 202)", n0(n["rps"]), ms(n["p50_us"]), ms(n["p99_us"]),
         n0(n["non2xx"]), n0(n["socket_errors"])],
        ["hookline (durability full)", n0(r["rps"]), ms(r["p50_us"]),
         ms(r["p99_us"]), n0(r["non2xx"]), n0(r["socket_errors"])]])
    print(f"\n  ratio hookline/nginx: {r['rps'] / n['rps']:.2f} "
          "(target >= 0.25, goal 0.5)")
    print(f"  hookline peak RSS under load: {mib(rss)}; events stored: "
          f"{stored:,}")
    return {"nginx": n, "hookline": r, "rss": rss, "stored": stored}


# --- 2. end to end -----------------------------------------------------------

def wait_delivered(h, want, timeout=300):
    deadline = time.monotonic() + timeout
    n = 0
    while time.monotonic() < deadline:
        (n,) = h.query("SELECT count(*) FROM deliveries "
                       "WHERE state = 'delivered'")
        if n >= want:
            break
        time.sleep(0.2)
    return n


def paced_sender(port, rate, n, errors):
    """One keep-alive connection posting n events at rate per second."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
    hdrs = {"Authorization": "Bearer bench-token",
            "Content-Type": "application/json"}
    t0 = time.monotonic()
    try:
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
    except OSError as e:
        errors.append(str(e))
    finally:
        conn.close()


@part("2", "2. End to end: hookline through the webhook connector to nginx "
      "answering 200")
def end_to_end(sink):
    # Throughput: as fast as wrk can post, then until everything is out.
    h = Hookline("e2e", sink_route(sink.url("/e2e")))
    r = wrk(h.url())
    t_stop = r["t1"] * 1000
    (accepted,) = h.query("SELECT count(*) FROM events")
    delivered = wait_delivered(h, accepted)
    rss = h.mem()["VmHWM"]
    h.stop()
    first, last = h.query("SELECT (SELECT min(received_at) FROM events), "
                          "(SELECT max(started_at + duration_ms) "
                          "FROM attempts)")
    (during,) = h.query("SELECT count(*) FROM attempts WHERE started_at <= ?",
                        (t_stop,))
    h.remove_db()
    if not delivered or first is None or last is None:
        raise BenchError(f"nothing was delivered; the end of {h.log}:\n"
                         f"{tail(h.log)}")
    span = max(last - first, 1) / 1000
    drain = max(last - t_stop, 1) / 1000

    # Latency: a paced load, timed from receipt to delivery in the store.
    h = Hookline("lat", sink_route(sink.url("/lat")))
    senders = 4
    per = RATE * SECONDS // senders
    errors = []
    threads = [threading.Thread(target=paced_sender,
                                args=(h.port, RATE / senders, per, errors))
               for _ in range(senders)]
    t0 = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    n = per * senders
    sent_rate = n / (time.monotonic() - t0)
    wait_delivered(h, n - len(errors))
    h.stop()
    c = sqlite3.connect(h.db)
    lat = sorted(row[0] for row in c.execute(
        "SELECT a.started_at + a.duration_ms - e.received_at FROM attempts a "
        "JOIN deliveries d ON d.id = a.delivery_id JOIN events e ON "
        "e.id = d.event_id WHERE a.outcome = 'delivered'"))
    c.close()
    h.remove_db()
    if not lat:
        raise BenchError("the paced load delivered nothing")

    def pct(q):
        return lat[min(len(lat) - 1, int(q * len(lat)))]

    print(f"  wrk -t{THREADS} -c{CONNS} -d{SECONDS}s into hookline "
          "(durability full), webhook connector to nginx answering 200, "
          f"max_in_flight {INFLIGHT}")
    print(f"  accepted {accepted:,} ({r['rps']:,.0f} req/s, p99 "
          f"{ms(r['p99_us'])}), delivered {delivered:,} in {span:.1f} s "
          f"from first receipt to last delivery: {delivered / span:,.0f} "
          "delivered/s")
    print(f"  delivered while intake ran: {during:,}; drain afterwards: "
          f"{(delivered - during) / drain:,.0f} delivered/s; peak RSS "
          f"{mib(rss)}")
    print(f"  received-to-delivered at {sent_rate:,.0f} events/s for "
          f"{SECONDS} s ({len(lat):,} events): p50 {pct(0.5)} ms, "
          f"p99 {pct(0.99)} ms, max {lat[-1]} ms")
    if errors:
        print(f"  note: {len(errors)} paced posts were refused: {errors[:5]}")
    return {"wrk": r, "accepted": accepted, "delivered": delivered,
            "rate": delivered / span, "rss": rss,
            "p50": pct(0.5), "p99": pct(0.99), "max": lat[-1]}


# --- 3. a million-event backlog ----------------------------------------------

def histogram(prom, family):
    """{upper bound: cumulative count} of a histogram in a Prometheus text
    exposition, summed over its label sets."""
    buckets = {}
    for m in re.finditer(rb"^" + family.encode() +
                         rb"_bucket\{[^}]*le=\"([^\"]+)\"[^}]*\} (\S+)$",
                         prom, re.M):
        le = float(m.group(1))          # float("+Inf") is inf
        buckets[le] = buckets.get(le, 0.0) + float(m.group(2))
    return buckets


def histogram_above(prom, family, bound):
    """(observations above bound, all observations)."""
    b = histogram(prom, family)
    total = b.get(float("inf"), 0.0)
    return total - b.get(float(bound), 0.0), total


def histogram_quantile(prom, family, q):
    """The upper bound of the bucket holding quantile q."""
    b = histogram(prom, family)
    total = b.get(float("inf"), 0.0)
    for le in sorted(b):
        if total and b[le] >= q * total:
            return le
    return None


def timings(h, path, tries=3):
    out = []
    for _ in range(tries):
        status, secs = timed_get(h.url(path), ADMIN)
        if status != 200:
            raise BenchError(f"GET {path} answered {status}")
        out.append(secs)
    return out


def post_during(h, path):
    """Seconds one webhook POST takes while GET path runs beside it."""
    argv = ["curl", "-s", "-o", "/dev/null", "--max-time", "120", "-H",
            f"Authorization: Bearer {ADMIN}", h.url(path)]
    if not shutil.which("curl"):
        return None
    g = procs.spawn(argv)
    time.sleep(0.05)
    try:
        return post_hook(h.port)
    finally:
        g.wait(130)
        procs.stop(g)


@part("3", f"3. hookline with a backlog of {BACKLOG:,} undelivered webhooks")
def backlog():
    dead = free_port()       # nothing listens there
    config = f"""{GENERIC_SOURCE}connectors:
  held:
    plugin: webhook
    url: http://127.0.0.1:{dead}/held
    policy: hold
policies:
  hold:
    retry: {{ schedule: [1h, 1h] }}
routes:
  - to: [held]
"""
    storage = f", max_queued: {BACKLOG * 2 + 100000}"
    h = Hookline("backlog", config, storage)
    status, body = http_request(h.port, "POST", "/v1/connectors/held/pause",
                                headers={"Authorization": f"Bearer {ADMIN}"})
    if status != 200:
        raise BenchError(f"pausing the connector answered {status}: {body!r}")
    empty = {p: timings(h, p, 1)[0]
             for p in ("/v1/connectors", "/metrics", "/healthz")}
    rss0 = h.mem()["VmRSS"]

    # Fill: wrk until BACKLOG webhooks are committed (each wrk thread also
    # stops at its share, so at most a connection's worth more arrive).
    marks = {}               # quarter -> (webhooks, seconds, VmRSS, WAL)
    state = {"max_rss": rss0, "n": 0, "max_wal": 0}
    con = sqlite3.connect(f"file:{h.db}?mode=ro", uri=True, timeout=30)

    def count(table):
        return con.execute(f"SELECT coalesce(max(seq), 0) FROM {table}"
                           ).fetchone()[0]

    def wal():
        try:
            return os.path.getsize(h.db + "-wal")
        except OSError:
            return 0

    def sample():
        m = h.mem()["VmRSS"]
        state["max_rss"] = max(state["max_rss"], m)
        state["wal"] = wal()
        state["max_wal"] = max(state["max_wal"], state["wal"])
        return m

    def filled():
        n = state["n"] = count("events")
        m = sample()
        for q in (1, 2, 3, 4):
            if n >= BACKLOG * q // 4 and q not in marks:
                marks[q] = (n, time.monotonic() - state["t0"], m,
                            state["wal"])
        return n >= BACKLOG
    fill_cap = max(60, BACKLOG // 2000)    # seconds; stops at 2,000/s
    state["t0"] = time.monotonic()
    r = wrk(h.url(), args=[(BACKLOG + THREADS - 1) // THREADS],
            seconds=fill_cap, until=filled)
    t_fill = time.monotonic()
    rss_fill = sample()
    wal_fill = state["wal"]
    (accepted,) = h.query("SELECT count(*) FROM events")
    first, last = h.query("SELECT min(received_at), max(received_at) "
                          "FROM events")
    fill_span = max((last or 0) - (first or 0), 1) / 1000

    # Normalizing catches up after the load: one delivery per webhook.
    deadline = time.monotonic() + DRAIN_CAP * 2
    queued, seen, changed = 0, -1, time.monotonic()
    while time.monotonic() < deadline:
        queued = count("deliveries")
        sample()
        if queued >= accepted:
            break
        if queued != seen:
            seen, changed = queued, time.monotonic()
        elif time.monotonic() - changed > 30:
            break
        time.sleep(0.5)
    t_norm = time.monotonic() - t_fill
    con.close()
    time.sleep(1)
    m = h.mem()
    wal_norm = wal()
    full = {p: timings(h, p) for p in ("/v1/connectors", "/metrics",
                                       "/healthz")}
    post_alone = post_hook(h.port)[1]
    post_conn = post_during(h, "/v1/connectors")
    post_metrics = post_during(h, "/metrics")
    listings = {p: timings(h, p, 1)[0] for p in (
        "/v1/deliveries?state=queued&limit=50", "/v1/events?limit=50")}
    m_after = h.mem()
    _, prom = http_request(h.port, "GET", "/metrics", timeout=120)
    slow_intake = histogram_above(prom, "hookline_intake_duration_seconds", 1)
    slow_commit = histogram_above(prom,
                                  "hookline_store_commit_duration_seconds", 1)
    own_p99 = histogram_quantile(prom, "hookline_intake_duration_seconds",
                                 0.99)
    states = {}
    c = sqlite3.connect(f"file:{h.db}?mode=ro", uri=True, timeout=30)
    t0 = time.perf_counter()
    for st, k in c.execute("SELECT state, count(*) FROM deliveries "
                           "GROUP BY state"):
        states[st] = k
    t_sql = time.perf_counter() - t0
    c.close()
    size = {s: os.path.getsize(h.db + s) if os.path.exists(h.db + s) else 0
            for s in ("", "-wal")}
    t_stop = h.stop()
    # Starting again on that store: until it listens, and the first listing.
    t0 = time.monotonic()
    h = Hookline("backlog", config, storage, keep_db=True)
    t_start = time.monotonic() - t0
    cold = timings(h, "/v1/connectors", 1)[0]
    m_restart = h.mem()
    h.stop()
    h.remove_db()

    print(f"  connector 'held' paused through the admin API, then wrk -t"
          f"{THREADS} -c{CONNS} posting the {r['body']:.0f}-byte body until "
          f"{BACKLOG:,} were accepted")
    print(f"  accepted {accepted:,} in {fill_span:.1f} s ({accepted / fill_span:,.0f}"
          f"/s), p50 {ms(r['p50_us'])}, p99 {ms(r['p99_us'])}, non-2xx "
          f"{r['non2xx']:,.0f}, socket errors {r['socket_errors']:,.0f}")
    done = "all" if queued >= accepted else "only"
    print(f"  normalized and queued for delivery: {done} {queued:,} of "
          f"{accepted:,}, {t_norm:.1f} s after the load stopped; deliveries "
          f"by state: {', '.join(f'{k} {v:,}' for k, v in sorted(states.items()))}")
    print(f"  store at the end: {size[''] / 2**20:,.0f} MiB database + "
          f"{size['-wal'] / 2**20:,.0f} MiB WAL "
          f"({(size[''] + size['-wal']) / max(accepted, 1):,.0f} bytes per "
          f"webhook); the WAL's largest, sampled: "
          f"{state['max_wal'] / 2**20:,.0f} MiB\n")

    def wal_mib(b):
        return "" if b is None else f"{b / 2**20:,.0f} MiB"
    rows = [["empty store", "", "", mib(rss0), ""]]
    prev = (0, 0.0)
    for q in (1, 2, 3, 4):
        if q not in marks:
            break
        n, t, rss, w = marks[q]
        rows.append([f"{n:,} accepted", f"{t:.1f} s",
                     n0((n - prev[0]) / max(t - prev[1], 0.001)), mib(rss),
                     wal_mib(w)])
        prev = (n, t)
    rows += [["load stopped", f"{t_fill - state['t0']:.1f} s", "",
              mib(rss_fill), wal_mib(wal_fill)],
             ["all normalized", f"{t_fill - state['t0'] + t_norm:.1f} s", "", mib(m["VmRSS"]),
              wal_mib(wal_norm)],
             ["after the requests below", "", "", mib(m_after["VmRSS"]),
              wal_mib(size["-wal"])],
             ["peak (VmHWM)", "", "", mib(m_after["VmHWM"]), ""]]
    table(["hookline", "since start", "accepted/s in the stretch", "VmRSS",
           "WAL"], rows)
    print(f"\n  from hookline's /metrics (arrival to answer, as hookline "
          f"times it): intake p99 <= {own_p99} s; answers over 1 s: "
          f"{slow_intake[0]:,.0f} of {slow_intake[1]:,.0f}; commits over 1 s: "
          f"{slow_commit[0]:,.0f} of {slow_commit[1]:,.0f}\n")

    def secs(v):
        return " / ".join(f"{x:.3f}" for x in v) + " s"
    table(["request (curl time_total)", "empty store",
           f"{accepted / 1e6:.2g}M backlog, 3 tries"],
          [["GET /v1/connectors", f"{empty['/v1/connectors']:.3f} s",
            secs(full["/v1/connectors"])],
           ["GET /metrics", f"{empty['/metrics']:.3f} s",
            secs(full["/metrics"])],
           ["GET /healthz", f"{empty['/healthz']:.3f} s",
            secs(full["/healthz"])]]
          + [[f"GET {p}", "", f"{v:.3f} s"] for p, v in listings.items()])
    print()
    print(f"  one webhook POST with the backlog: {post_alone:.3f} s alone"
          + (f", {post_conn[1]:.3f} s while GET /v1/connectors runs, "
             f"{post_metrics[1]:.3f} s while GET /metrics runs"
             if post_conn and post_metrics else ""))
    print(f"  the same GROUP BY from the sqlite3 module (another "
          f"connection): {t_sql:.3f} s")
    print(f"  stopping hookline (SIGTERM to exit): {t_stop:.1f} s; started "
          f"again on that store it listened within {t_start:.1f} s, "
          "answered GET /v1/connectors in "
          f"{cold:.3f} s, RSS {mib(m_restart['VmRSS'])}")
    return {"wrk": r, "accepted": accepted, "rate": accepted / fill_span,
            "rss_peak": m_after["VmHWM"], "rss": m["VmRSS"],
            "connectors": full["/v1/connectors"], "metrics": full["/metrics"],
            "queued": queued}


# --- 4. Prometheus Alertmanager ----------------------------------------------

def iso(t):
    return datetime.datetime.fromtimestamp(
        t, datetime.timezone.utc).isoformat(timespec="milliseconds"
                                            ).replace("+00:00", "Z")


def version_of(argv, pattern):
    try:
        out = subprocess.run(argv, capture_output=True, text=True,
                             timeout=30)
        m = re.search(pattern, out.stdout + out.stderr)
        return m.group(1) if m else "?"
    except (OSError, subprocess.TimeoutExpired):
        return "?"


def drained(sink, path, r, base, accepted):
    """Counts what reached the sink on path for the load r, of accepted (what
    the system under test counted: wrk does not count the requests in flight
    when it stops, which were answered all the same)."""
    r["accepted"] = accepted
    n, last, waited = sink.wait(path, accepted, base)
    span = max(last - r["t0"], 0.001) if n else None
    return {"delivered": n, "span": span, "accepted": accepted,
            "rate": n / span if span else 0.0, "waited": waited}


def am_received(port):
    """Alerts Alertmanager counted as received (its /metrics)."""
    status, body = http_request(port, "GET", "/metrics")
    if status != 200:
        raise BenchError(f"alertmanager's /metrics answered {status}")
    return sum(float(m.group(1)) for m in re.finditer(
        rb"^alertmanager_alerts_received_total\{[^}]*\} (\S+)$", body, re.M))


@part("4", "4. Alertmanager-shaped load: Prometheus Alertmanager against "
      "hookline")
def alertmanager(sink):
    if not os.access(ALERTMANAGER, os.X_OK):
        print(f"  skipped: {ALERTMANAGER} is not installed (Debian package "
              "prometheus-alertmanager)")
        return {"skipped": True}
    version = version_of([ALERTMANAGER, "--version"], r"version (\S+)")
    now = time.time()
    starts, ends = iso(now - 60), iso(now + 3600)

    d = os.path.join(WORK, "alertmanager")
    os.makedirs(d)
    config = os.path.join(d, "alertmanager.yml")
    log = os.path.join(d, "alertmanager.log")
    with open(config, "w") as f:
        # Every alert its own group ('...'), notified at once, then not
        # again: one webhook per alert, as hookline makes one delivery per
        # event.
        json.dump({
            "route": {"receiver": "sink", "group_by": ["..."],
                      "group_wait": "0s", "group_interval": "5m",
                      "repeat_interval": "24h"},
            "receivers": [{"name": "sink", "webhook_configs": [{
                "url": sink.url("/alertmanager"), "send_resolved": False}]}],
        }, f, indent=2)

    def ready(port):
        try:
            return http_request(port, "GET", "/-/ready", timeout=5)[0] == 200
        except OSError:
            return False

    def make(port):
        return procs.spawn([ALERTMANAGER, f"--config.file={config}",
                            f"--storage.path={d}/data",
                            f"--web.listen-address=127.0.0.1:{port}",
                            "--cluster.listen-address=", "--log.level=warn"],
                           log=log)
    am, port = start_listener("alertmanager", make, log, ready=ready,
                              timeout=60)
    # One alert first: the pipeline works end to end.
    alert = [{"labels": {"alertname": "BenchWarmup", "instance": "warmup"},
              "startsAt": starts, "endsAt": ends}]
    status, body = http_request(port, "POST", "/api/v2/alerts",
                                json.dumps(alert).encode(),
                                {"Content-Type": "application/json"})
    if status != 200:
        raise BenchError(f"alertmanager answered {status} to an alert: "
                         f"{body[:200]!r}")
    if sink.wait("/alertmanager", 1, idle=30, cap=30)[0] < 1:
        print("  skipped: alertmanager sent no notification within 30 s; "
              f"the end of its log:\n{tail(log)}")
        return {"skipped": True}
    base = sink.count("/alertmanager")
    received = am_received(port)
    a = wrk(f"http://127.0.0.1:{port}/api/v2/alerts", "alerts.lua",
            ["api", starts, ends])
    a.update(drained(sink, "/alertmanager", a, base,
                     am_received(port) - received))
    a["rss"] = mem_kb(am.pid)["VmHWM"]
    procs.stop(am)

    h = Hookline("am", sink_route(sink.url("/hookline-am"), "alertmanager"))
    base = sink.count("/hookline-am")
    w = wrk(h.url(), "alerts.lua", ["webhook", starts])
    w.update(drained(sink, "/hookline-am", w, base,
                     h.query("SELECT count(*) FROM events")[0]))
    w["rss"] = h.mem()["VmHWM"]
    h.stop()
    unparsed, canonical = h.query(
        "SELECT (SELECT count(*) FROM events WHERE state = 'unparsed'), "
        "(SELECT count(*) FROM canonical WHERE type = 'alert.firing')")
    h.remove_db()

    print(f"  Alertmanager {version}: wrk -t{THREADS} -c{CONNS} -d{SECONDS}s "
          "POSTs /api/v2/alerts, one alert per request (a "
          f"{a['body']:.0f}-byte body), each with its own labels; "
          "group_by ['...'], group_wait 0s: one webhook per alert to nginx "
          "answering 200; alerts are held in memory only")
    print(f"  hookline: the same alerts as Alertmanager's webhook (payload "
          f"version 4, one alert, {w['body']:.0f} bytes, bearer token) to a "
          "source of kind alertmanager (durability full), webhook connector "
          f"(max_in_flight {INFLIGHT}) to the same nginx")
    print("  delivered/s: what nginx logged, over the time from the start "
          "of the load to the last delivery\n")
    table(["system", "accepted/s", "p50", "p99", "non-2xx", "accepted",
           "delivered", "delivered/s", "peak RSS"],
          [[f"alertmanager {version}", n0(a["rps"]), ms(a["p50_us"]),
            ms(a["p99_us"]), n0(a["non2xx"]), n0(a["accepted"]),
            n0(a["delivered"]), n0(a["rate"]), mib(a["rss"])],
           ["hookline", n0(w["rps"]), ms(w["p50_us"]), ms(w["p99_us"]),
            n0(w["non2xx"]), n0(w["accepted"]), n0(w["delivered"]),
            n0(w["rate"]),
            mib(w["rss"])]])
    for name, x in (("alertmanager", a), ("hookline", w)):
        if x["delivered"] < x["accepted"]:
            print(f"  note: {name} delivered {x['delivered']:,} of "
                  f"{x['accepted']:,.0f} accepted; stopped waiting after "
                  f"{x['waited']:.0f} s")
    if unparsed or canonical < w["accepted"]:
        print(f"  note: hookline left {unparsed:,} webhooks unparsed and made "
              f"{canonical:,} alert.firing events")
    return {"am": a, "hookline": w, "version": version}


# --- 5. Node-RED -------------------------------------------------------------

def node_red():
    """(node, red.js, version) or (None, reason, None)."""
    node = shutil.which("node")
    if not node:
        return None, "node (Node.js) is not installed", None
    red = os.path.join(NODE_RED_DIR, "node_modules", "node-red", "red.js")
    if not os.path.exists(red):
        if os.environ.get("BENCH_NODE_RED") == "skip":
            return None, f"node-red is not in {NODE_RED_DIR} and " \
                "BENCH_NODE_RED=skip", None
        npm = shutil.which("npm")
        if not npm:
            return None, f"node-red is not in {NODE_RED_DIR} and npm is " \
                "not installed", None
        tmp = NODE_RED_DIR + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        os.makedirs(tmp)
        log = os.path.join(WORK, "npm.log")
        print(f"  installing node-red@4 into {NODE_RED_DIR} with npm "
              "(once) ...", flush=True)
        p = procs.spawn([npm, "install", "--prefix", tmp, "node-red@4",
                         "--no-audit", "--no-fund", "--loglevel=error"],
                        log=log)
        try:
            p.wait(NPM_TIMEOUT)
        except subprocess.TimeoutExpired:
            pass
        rc = p.returncode
        procs.stop(p)
        if rc != 0 or not os.path.exists(
                os.path.join(tmp, "node_modules", "node-red", "red.js")):
            shutil.rmtree(tmp, ignore_errors=True)
            lines = [ln for ln in tail(log, 40).splitlines()
                     if ln.strip() and "complete log" not in ln]
            said = next((ln for ln in lines if " code " in ln),
                        lines[0] if lines else "no output")
            why = (f"timed out after {NPM_TIMEOUT} s" if rc is None
                   else f"exit {rc}: {said.strip()}")
            return None, f"npm install node-red@4 failed ({why})", None
        shutil.rmtree(NODE_RED_DIR, ignore_errors=True)
        os.rename(tmp, NODE_RED_DIR)
    try:
        with open(os.path.join(os.path.dirname(red), "package.json")) as f:
            version = json.load(f)["version"]
    except (OSError, ValueError, KeyError):
        version = "?"
    return node, red, version


@part("5", "5. Node-RED against hookline: the load of parts 1 and 2")
def nodered(sink):
    node, red, version = node_red()
    if not node:
        print(f"  skipped: {red}")
        return {"skipped": True}
    d = os.path.join(WORK, "node-red")
    os.makedirs(d)
    flow = os.path.join(d, "flows.json")
    with open(flow, "w") as f:
        json.dump([
            {"id": "bench", "type": "tab", "label": "bench"},
            {"id": "in", "type": "http in", "z": "bench", "url": "/hook",
             "method": "post", "upload": False, "swaggerDoc": "",
             "wires": [["answer", "forward"]]},
            {"id": "answer", "type": "change", "z": "bench", "rules": [
                {"t": "set", "p": "payload", "pt": "msg", "to":
                 '{"status":"queued"}', "tot": "json"}],
             "wires": [["accepted"]]},
            {"id": "accepted", "type": "http response", "z": "bench",
             "statusCode": "202", "headers": {}, "wires": []},
            {"id": "forward", "type": "http request", "z": "bench",
             "method": "POST", "ret": "txt", "paytoqs": "ignore",
             "url": sink.url("/nodered"), "persist": True, "tls": "",
             "proxy": "", "authType": "", "senderr": False, "headers": [],
             "wires": [[]]},
        ], f, indent=1)
    log = os.path.join(d, "node-red.log")

    def ready(port):
        try:
            return http_request(port, "POST", "/hook", BODY, {
                "Content-Type": "application/json"}, timeout=5)[0] == 202
        except OSError:
            return False

    def make(port):
        return procs.spawn([node, red, "--userDir", os.path.join(d, "user"),
                            "-p", str(port), "-D",
                            "logging.console.level=warn", flow], log=log)
    nr, port = start_listener("node-red", make, log, ready=ready, timeout=90)
    sink.wait("/nodered", 1, idle=10, cap=10)
    base = sink.count("/nodered")
    r = wrk(f"http://127.0.0.1:{port}/hook")
    # Node-RED counts nothing: what wrk saw answered 202 (the requests in
    # flight when wrk stopped were answered too, and are delivered).
    r.update(drained(sink, "/nodered", r, base, int(r["ok"])))
    r["rss"] = mem_kb(nr.pid)["VmHWM"]
    alive = nr.poll() is None
    procs.stop(nr)

    e = RESULTS.get("2") or {}
    i = RESULTS.get("1") or {}
    node_version = version_of([node, "--version"], r"v(\S+)")
    print(f"  Node-RED {version} (node {node_version}):"
          " http in (POST /hook) -> change -> http response 202, and -> "
          "http request (POST, keep-alive) to nginx answering 200")
    print(f"  wrk -t{THREADS} -c{CONNS} -d{SECONDS}s, the "
          f"{r['body']:.0f}-byte body of parts 1 and 2; hookline's figures "
          "are theirs. Node-RED keeps nothing it accepted: what is in flight "
          "is lost when it stops\n")
    rows = [[f"node-red {version}", n0(r["rps"]), ms(r["p50_us"]),
             ms(r["p99_us"]), n0(r["non2xx"]), n0(r["ok"]),
             n0(r["delivered"]), n0(r["rate"]), mib(r["rss"])]]
    if "wrk" in e:
        rows.append(["hookline (part 1; part 2 delivering)",
                     n0(i["hookline"]["rps"]) if "hookline" in i else "-",
                     ms(i["hookline"]["p50_us"]) if "hookline" in i else "-",
                     ms(i["hookline"]["p99_us"]) if "hookline" in i else "-",
                     n0(e["wrk"]["non2xx"]), n0(e["accepted"]),
                     n0(e["delivered"]), n0(e["rate"]), mib(e["rss"])])
    table(["system", "accepted/s", "p50", "p99", "non-2xx", "accepted",
           "delivered", "delivered/s", "peak RSS"], rows)
    if r["delivered"] < r["ok"]:
        print(f"  note: node-red delivered {r['delivered']:,} of "
              f"{r['ok']:,.0f} accepted (stopped waiting after "
              f"{r['waited']:.0f} s)")
    if not alive:
        print(f"  note: node-red had exited; the end of its log:\n{tail(log)}")
    r["version"] = version
    return r


# --- summary -----------------------------------------------------------------

def summary():
    section("Summary (same run, same machine; delivered/s from the start of "
            "the load to the last delivery)")
    rows = []

    def ok(k):
        v = RESULTS.get(k)
        return v if v and "failed" not in v and "skipped" not in v else None
    if ok("1"):
        n = RESULTS["1"]["nginx"]
        rows.append(["nginx, static 202 (the ceiling)", n0(n["rps"]), "-",
                     ms(n["p99_us"]), "-", "no"])
    if ok("1") or ok("2"):
        i, e = ok("1") or {}, ok("2") or {}
        rss = max(i.get("rss") or 0, e.get("rss") or 0) or None
        rows.append(["hookline, generic webhook",
                     n0(i["hookline"]["rps"]) if i else "-",
                     n0(e["rate"]) if e else "-",
                     ms(i["hookline"]["p99_us"]) if i else "-", mib(rss),
                     "yes"])
    if ok("3"):
        b = RESULTS["3"]
        rows.append([f"hookline, filling a {BACKLOG:,}-webhook backlog",
                     n0(b["rate"]), "(paused)", ms(b["wrk"]["p99_us"]),
                     mib(b["rss_peak"]), "yes"])
    if ok("4"):
        a, w = RESULTS["4"]["am"], RESULTS["4"]["hookline"]
        rows.append(["hookline, Alertmanager webhook", n0(w["rps"]),
                     n0(w["rate"]), ms(w["p99_us"]), mib(w["rss"]), "yes"])
        rows.append([f"Alertmanager {RESULTS['4']['version']}, 1 alert/req",
                     n0(a["rps"]), n0(a["rate"]), ms(a["p99_us"]),
                     mib(a["rss"]), "no"])
    if ok("5"):
        r = RESULTS["5"]
        rows.append([f"Node-RED {r['version']}", n0(r["rps"]), n0(r["rate"]),
                     ms(r["p99_us"]), mib(r["rss"]), "no"])
    table(["system", "accepted req/s", "delivered/s", "p99 intake",
           "peak RSS", "durable before 202"], rows)
    for k, v in sorted(RESULTS.items()):
        if v and "failed" in v:
            print(f"  part {k} failed (see above)")
        elif v and "skipped" in v:
            print(f"  part {k} skipped (see above)")
    if ok("4"):
        print("  Alertmanager answers 200, not 202, and keeps alerts in "
              "memory only (it snapshots silences and its notification log, "
              "not alerts)")


def main():
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    snapshot_binary()
    load = os.getloadavg()
    print(f"hookline bench: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}, "
          f"{os.cpu_count()} cores, load average {load[0]:.2f} "
          f"{load[1]:.2f} {load[2]:.2f}; wrk, the peers and hookline share "
          "the cores", flush=True)
    try:
        intake()
        with procs.scope():
            sink = Sink() if not ONLY or ONLY & {"2", "4", "5"} else None
            end_to_end(sink)
            backlog()
            alertmanager(sink)
            nodered(sink)
        summary()
    finally:
        # A second Ctrl-C or a TERM from the wrapper must not cut this short.
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        procs.stop_all()
    return 1 if any(v and "failed" in v for v in RESULTS.values()) else 0


if __name__ == "__main__":
    sys.exit(main())
