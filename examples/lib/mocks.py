"""Stand-in receivers for the examples' run.sh scripts, and tools to read
what they received.

The receivers are the test suite's mocks (tests/e2e): Slack and Teams from
mock_chat.py, PagerDuty and Jira from mock_incident.py, and a plain webhook
receiver (sink.py). Each checks requests against the service's published
rules and answers the way the service does.

    mocks.py serve KIND --record FILE --url-file FILE [--jira-basic EMAIL:TOKEN]
        Start the KIND receiver (slack, teams, pagerduty, jira, sink) on a
        free loopback port. Its URL goes into --url-file once it listens (a
        webhook URL for slack, teams and sink; the API base URL for
        pagerduty and jira). Every request is appended to --record as one
        JSON line: {"accepted": true|false, "mock", "method", "path",
        "status", "headers", "body", "answer"}. Runs until SIGTERM or SIGINT.

    mocks.py show FILE [--body]
        Print what a receiver got: one block per request with the parts a
        person looks at (the Slack text, the Teams card title, the PagerDuty
        action, the Jira issue, the signature headers), the body shortened.

    mocks.py verify-standard-webhooks FILE SECRET [SECRET ...]
        Check the Standard Webhooks signature of every request recorded in
        FILE with an implementation independent of hookline's (sink.py);
        exit 1 naming the first request that does not verify.

Standard library only; run with /usr/bin/python3.
"""
import argparse
import json
import signal
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tests" / "e2e"))

from mock_chat import SlackMock, TeamsMock  # noqa: E402
from mock_incident import MockJira, MockPagerDuty  # noqa: E402
from sink import Sink, verify_standard_webhooks  # noqa: E402

# The path each webhook-style receiver is reached on, shaped like the real
# service's URLs.
WEBHOOK_PATHS = {
    "slack": "/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    "teams": "/workflows/hookline-example/triggers/manual/paths/invoke",
    "sink": "/hooks/in",
}
KINDS = ("slack", "teams", "pagerduty", "jira", "sink")
BODY_LINES = 24


def make_mock(kind, args):
    if kind == "slack":
        return SlackMock()
    if kind == "teams":
        return TeamsMock(legacy=False)
    if kind == "pagerduty":
        return MockPagerDuty()
    if kind == "jira":
        return MockJira(basic=args.jira_basic, projects=args.jira_project)
    return Sink()


def answer_text(behaviour):
    body = getattr(behaviour, "body", b"")
    if isinstance(body, (dict, list)):
        return json.dumps(body)
    if isinstance(body, bytes):
        return body.decode("utf-8", "replace")
    return str(body or "")


def record_requests(mock, kind, path):
    """Wrap the mock's choice of answer so each request is written to path
    as soon as its answer is known."""
    lock = threading.Lock()
    out = open(path, "a", encoding="utf-8")
    choose = mock._choose

    def recording_choose(req):
        behaviour = choose(req)
        status = getattr(behaviour, "status", None)
        line = {
            "accepted": status is not None and 200 <= status < 300,
            "mock": kind,
            "method": req.method,
            "path": req.path,
            "status": status,
            "headers": {k: ", ".join(req.headers.get_all(k))
                        for k in req.headers},
            "body": req.body.decode("utf-8", "surrogateescape"),
            "answer": answer_text(behaviour) if status and status >= 300
            else "",
        }
        with lock:
            out.write(json.dumps(line) + "\n")
            out.flush()
        return behaviour

    mock._choose = recording_choose
    return out


def serve(args):
    mock = make_mock(args.kind, args)
    out = record_requests(mock, args.kind, args.record)
    url = mock.url(WEBHOOK_PATHS.get(args.kind, ""))
    tmp = Path(args.url_file + ".tmp")
    tmp.write_text(url + "\n")
    tmp.rename(args.url_file)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    signal.signal(signal.SIGINT, lambda *_: stop.set())
    while not stop.wait(0.5):
        pass
    mock.close()
    out.close()
    return 0


def read_records(path):
    with open(path, encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def shorten(text, lines=BODY_LINES):
    rows = text.splitlines()
    if len(rows) <= lines:
        return text
    return "\n".join(rows[:lines] + [f"... ({len(rows) - lines} more lines)"])


def pretty(body):
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return body


ADF_BLOCKS = {"doc", "bulletList", "orderedList", "blockquote"}


def adf_text(node):
    """The plain text of an Atlassian Document Format node."""
    if isinstance(node, list):
        return "".join(adf_text(c) for c in node)
    if not isinstance(node, dict):
        return ""
    kind = node.get("type")
    if kind == "text":
        return node.get("text", "")
    if kind == "hardBreak":
        return "\n"
    parts = [adf_text(c) for c in node.get("content", [])]
    if kind == "listItem":
        return "- " + "".join(parts)
    return ("\n" if kind in ADF_BLOCKS else "").join(parts)


def summary(rec):
    """The lines a person reads first, per kind of receiver."""
    try:
        body = json.loads(rec["body"])
    except ValueError:
        return []
    if not isinstance(body, dict):
        return []
    kind = rec["mock"]
    if kind == "slack":
        return [f"text: {body.get('text', '')}"]
    if kind == "teams":
        out = []
        for att in body.get("attachments", []):
            card = att.get("content", {})
            for el in card.get("body", []):
                if el.get("type") == "TextBlock":
                    out.append(f"card: {el.get('text', '')}")
                elif el.get("type") == "FactSet":
                    out += [f"  {f.get('title')}: {f.get('value')}"
                            for f in el.get("facts", [])]
            out += [f"  link: {a.get('url')}" for a in card.get("actions", [])
                    if a.get("type") == "Action.OpenUrl"]
        return out
    if kind == "pagerduty":
        payload = body.get("payload", {})
        return [f"event_action: {body.get('event_action')}",
                f"dedup_key: {body.get('dedup_key')}",
                f"summary: {payload.get('summary', '')}",
                f"severity: {payload.get('severity', '')}"]
    if kind == "jira":
        if "fields" in body:
            f = body["fields"]
            return [f"project: {f.get('project', {}).get('key')}",
                    f"issuetype: {f.get('issuetype', {}).get('name')}",
                    f"summary: {f.get('summary')}",
                    f"labels: {', '.join(f.get('labels', []))}",
                    "description: " + shorten(adf_text(f.get("description")),
                                              6)]
        if "transition" in body:
            return [f"transition: {body['transition'].get('id')}"]
        if "body" in body:
            return ["comment: " + shorten(adf_text(body["body"]), 6)]
    return []


SHOWN_HEADERS = ("Content-Type", "Idempotency-Key", "X-Request-ID",
                 "webhook-id", "webhook-timestamp", "webhook-signature",
                 "X-Hub-Signature-256")


def show(args):
    recs = read_records(args.file)
    if not recs:
        print("  (nothing received)")
    for i, rec in enumerate(recs, 1):
        print(f"--- #{i} {rec['method']} {rec['path']} -> {rec['status']}")
        for name in SHOWN_HEADERS:
            if name in rec["headers"]:
                print(f"{name}: {rec['headers'][name]}")
        lines = summary(rec)
        for line in lines:
            print(line)
        if not lines or args.body:
            print(shorten(pretty(rec["body"])))
        if rec["answer"]:
            print(f"answered: {rec['answer']}")
    return 0


def verify(args):
    recs = read_records(args.file)
    if not recs:
        print("verify: no requests recorded", file=sys.stderr)
        return 1
    for i, rec in enumerate(recs, 1):
        body = rec["body"].encode("utf-8", "surrogateescape")
        try:
            verify_standard_webhooks(args.secrets, rec["headers"], body)
        except ValueError as e:
            print(f"verify: request #{i} ({rec['method']} {rec['path']}) "
                  f"does not verify: {e}", file=sys.stderr)
            return 1
        print(f"request #{i}: Standard Webhooks signature valid "
              f"(webhook-id {rec['headers'].get('webhook-id')})")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    s = sub.add_parser("serve", help="start a receiver")
    s.add_argument("kind", choices=KINDS)
    s.add_argument("--record", required=True)
    s.add_argument("--url-file", required=True)
    s.add_argument("--jira-basic", default="ops@example.com:jira-api-token",
                   help="the email:token pair the Jira mock accepts")
    s.add_argument("--jira-project", action="append", default=None,
                   help="a project key the Jira mock knows (default OPS)")
    s.set_defaults(func=serve)
    sh = sub.add_parser("show", help="print what a receiver got")
    sh.add_argument("file")
    sh.add_argument("--body", action="store_true",
                    help="also print each body (shortened)")
    sh.set_defaults(func=show)
    v = sub.add_parser("verify-standard-webhooks",
                       help="check the signatures of what a receiver got")
    v.add_argument("file")
    v.add_argument("secrets", nargs="+")
    v.set_defaults(func=verify)
    args = p.parse_args(argv)
    if getattr(args, "jira_project", ()) is None:
        args.jira_project = ["OPS"]
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
