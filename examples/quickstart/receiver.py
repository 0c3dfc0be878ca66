"""A local receiver for the quickstart: prints each delivery hookline makes
and answers 200.

    /usr/bin/python3 examples/quickstart/receiver.py [--port 9090] [--lines 40]

It listens on 127.0.0.1 (port 9090 by default, where the quickstart's
webhook connector sends) and prints, for every request: the method and path,
the Idempotency-Key header (the delivery id, the same on every retry), and
the body, pretty-printed when it is JSON and cut after --lines lines. Stop it
with Ctrl-C. Standard library only.
"""
import argparse
import http.server
import json
import sys

MAX_BODY = 16 * 1024 * 1024


def shorten(text, lines):
    rows = text.splitlines()
    if lines <= 0 or len(rows) <= lines:
        return text
    return "\n".join(rows[:lines] + [f"  ... ({len(rows) - lines} more lines)"])


def describe(body):
    """The body for a person: indented JSON, or text, or a byte count."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        pass
    try:
        return body.decode("utf-8")
    except UnicodeDecodeError:
        return f"({len(body)} bytes, not UTF-8)"


class Handler(http.server.BaseHTTPRequestHandler):
    server_version = "hookline-quickstart-receiver"
    protocol_version = "HTTP/1.1"
    lines = 40

    def receive(self):
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY:
            self.send_error(413, "body too large")
            return
        body = self.rfile.read(length) if length else b""
        out = [f"{self.command} {self.path}",
               f"Idempotency-Key: {self.headers.get('Idempotency-Key', '(none)')}"]
        if body:
            out.append(shorten(describe(body), self.lines))
        print("\n".join(out) + "\n", flush=True)
        answer = b'{"ok":true}'
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    do_POST = do_PUT = do_PATCH = receive

    def log_message(self, format, *args):
        """Quiet: the deliveries are printed by receive."""


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Print each delivery hookline makes and answer 200.")
    p.add_argument("--port", type=int, default=9090,
                   help="the port to listen on, on 127.0.0.1 (default 9090)")
    p.add_argument("--lines", type=int, default=40,
                   help="print at most this many lines of each body "
                        "(0: all; default 40)")
    args = p.parse_args(argv)
    Handler.lines = args.lines
    try:
        server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port),
                                                 Handler)
    except OSError as e:
        print(f"receiver: cannot listen on 127.0.0.1:{args.port}: "
              f"{e.strerror}", file=sys.stderr)
        return 1
    print(f"receiver: listening on http://127.0.0.1:{server.server_port}/",
          flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
