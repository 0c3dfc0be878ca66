"""Mock receivers for the incident and ticketing connectors: PagerDuty Events
API v2, Opsgenie's Alert API and Jira Cloud's REST API v3.

Each is a Sink (tests/e2e/sink.py) whose ``handler`` checks every request
against the published rules summarised in
/work/shared/fixtures/OUTBOUND-RULES.md, keeps the state a test asserts on,
and answers the way the real service does. Scripted behaviours of the Sink
(``script``, ``script_on``) still come first, for fault injection; the
requests they answer are recorded but do not change the mock's state.
``throttle(n)`` answers the next n requests with the service's 429, and
``hold(path)`` keeps requests on a path waiting until the test lets them go.

    with MockPagerDuty() as pd:
        ...                                   # point hookline's url at pd.url("")
        pd.throttle(1, retry_after="1")       # the next request gets 429
        assert pd.incidents["k1"]["status"] == "resolved"

The rules are also available as plain functions (``pagerduty_problems``,
``opsgenie_alert_problems``, ``opsgenie_close_problems``,
``jira_issue_problems``, ``adf_problems``) that return a list of what is
wrong, empty when the body is accepted.

Standard library only; runs under /usr/bin/python3.
"""
import base64
import json
import re
import threading
import urllib.parse
import uuid

from sink import Answer, Sink

__all__ = [
    "MockPagerDuty", "MockOpsgenie", "MockJira",
    "pagerduty_problems", "opsgenie_alert_problems", "opsgenie_close_problems",
    "jira_issue_problems", "adf_problems", "adf_text",
]


def _json_body(req):
    """The request body as a JSON object, or None."""
    try:
        body = json.loads(req.body)
    except (ValueError, UnicodeDecodeError):
        return None
    return body if isinstance(body, dict) else None


def _is_str(v):
    return isinstance(v, str)


class _Mock(Sink):
    """A Sink that validates and answers like a service; subclasses define
    ``answer(request)``. ``throttle(n)`` answers the next n requests with
    the service's 429."""

    def __init__(self):
        super().__init__()
        self.state_lock = threading.Lock()
        self.refusals = []          # (path, status, problems) of refused requests
        self._throttled = 0
        self._retry_after = None
        self._holds = {}
        self.handler = self._handle

    def throttle(self, n=1, retry_after=None):
        """Answer the next n requests 429 (with Retry-After if given)."""
        with self.state_lock:
            self._throttled += n
            self._retry_after = retry_after

    def hold(self, path):
        """Hold requests on exactly `path` (before they are judged) until
        the returned threading.Event is set."""
        gate = threading.Event()
        with self.state_lock:
            self._holds[path] = gate
        return gate

    def base_url(self):
        return self.url("")

    def _handle(self, req):
        with self.state_lock:
            gate = self._holds.get(req.path)
        if gate is not None:
            gate.wait(30)
        with self.state_lock:
            if self._throttled:
                self._throttled -= 1
                headers = {}
                if self._retry_after is not None:
                    headers["Retry-After"] = str(self._retry_after)
                return Answer(429, self.throttle_body(), headers)
            answer = self.answer(req)
            if answer.status >= 400:
                self.refusals.append((req.path, answer.status, answer.body))
            return answer

    def throttle_body(self):
        return b""

    def answer(self, req):  # pragma: no cover - subclasses
        raise NotImplementedError


# ---- PagerDuty Events API v2 ---------------------------------------------

PD_ACTIONS = ("trigger", "acknowledge", "resolve")
PD_SEVERITIES = ("critical", "error", "warning", "info")
PD_BODY_MAX = 512 * 1024
_ISO8601 = re.compile(
    r"^\d{4}-\d{2}-\d{2}(T\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?)?$")


def pagerduty_problems(body, raw_len=0):
    """What PagerDuty would refuse in an Events API v2 body (a dict), in
    its own words where known."""
    if not isinstance(body, dict):
        return ["Event object is invalid: the body is not a JSON object"]
    p = []
    if raw_len > PD_BODY_MAX:
        p.append(f"Event is {raw_len} bytes, over the 512 KB limit")
    rk = body.get("routing_key")
    if not _is_str(rk) or not rk:
        p.append("'routing_key' is missing or blank")
    elif len(rk) != 32:
        p.append("Length of 'routing_key' is incorrect (should be 32 characters)")
    action = body.get("event_action")
    if action not in PD_ACTIONS:
        p.append("'event_action' is invalid (must be one of: trigger, "
                 "acknowledge, resolve)")
    dk = body.get("dedup_key")
    if dk is not None and (not _is_str(dk) or len(dk) > 255):
        p.append("'dedup_key' must be a string of at most 255 characters")
    if action in ("acknowledge", "resolve") and not dk:
        p.append(f"'dedup_key' is required for event_action {action}")
    if action == "trigger":
        p += _pd_payload_problems(body.get("payload"))
    for i, img in enumerate(body.get("images") or []):
        src = img.get("src") if isinstance(img, dict) else None
        if not _is_str(src) or not src.startswith("https://"):
            p.append(f"'images[{i}].src' is required and must be https")
    links = body.get("links")
    if links is not None and not isinstance(links, list):
        p.append("'links' must be an array")
    for i, link in enumerate(links or []):
        href = link.get("href") if isinstance(link, dict) else None
        if not _is_str(href) or not href:
            p.append(f"'links[{i}].href' is required")
    return p


def _pd_payload_problems(payload):
    if not isinstance(payload, dict):
        return ["'payload' is missing or not an object"]
    p = []
    summary = payload.get("summary")
    if not _is_str(summary) or not summary:
        p.append("'payload.summary' is missing or blank")
    elif len(summary) > 1024:
        p.append("'payload.summary' is longer than 1024 characters")
    source = payload.get("source")
    if not _is_str(source) or not source:
        p.append("'payload.source' is missing or blank")
    if payload.get("severity") not in PD_SEVERITIES:
        p.append("'payload.severity' is invalid (must be one of: critical, "
                 "error, warning, info)")
    ts = payload.get("timestamp")
    if ts is not None and (not _is_str(ts) or not _ISO8601.match(ts)):
        p.append("'payload.timestamp' is not an ISO 8601 time")
    for key in ("component", "group", "class"):
        if key in payload and not _is_str(payload[key]):
            p.append(f"'payload.{key}' must be a string")
    cd = payload.get("custom_details")
    if cd is not None and not isinstance(cd, (dict, str)):
        p.append("'payload.custom_details' must be an object")
    return p


class MockPagerDuty(_Mock):
    """POST /v2/enqueue. ``events``: every accepted event; ``incidents``:
    dedup_key -> {"status": triggered|acknowledged|resolved, "summary",
    "events": n}."""

    def __init__(self):
        super().__init__()
        self.events = []
        self.incidents = {}

    def throttle_body(self):
        # The shape of PagerDuty's 429 body is not confirmed; its status is.
        return {"status": "throttle event", "message": "Requests for this "
                "service are arriving too quickly. Please retry later."}

    def answer(self, req):
        if req.method != "POST" or req.path != "/v2/enqueue":
            return Answer(404, {"status": "not found"})
        body = _json_body(req)
        problems = pagerduty_problems(body, len(req.body))
        if problems:
            return Answer(400, {"status": "invalid event",
                                "message": "Event object is invalid",
                                "errors": problems})
        key = body.get("dedup_key") or uuid.uuid4().hex
        self.events.append(body)
        inc = self.incidents.get(key)
        action = body["event_action"]
        if action == "trigger":
            if inc is None or inc["status"] == "resolved":
                inc = self.incidents[key] = {"status": "triggered", "events": 0}
            inc["summary"] = body["payload"]["summary"]
        elif inc is not None and inc["status"] != "resolved":
            inc["status"] = "acknowledged" if action == "acknowledge" else "resolved"
        if inc is not None:
            inc["events"] += 1
        return Answer(202, {"status": "success", "message": "Event processed",
                            "dedup_key": key})


# ---- Opsgenie Alert API ----------------------------------------------------

OG_PRIORITIES = ("P1", "P2", "P3", "P4", "P5")
OG_LIMITS = {"message": 130, "alias": 512, "description": 15000,
             "entity": 512, "source": 100, "user": 100, "note": 25000}


def _og_strings(body, fields, p):
    for name in fields:
        if name in body:
            v = body[name]
            if not _is_str(v):
                p[name] = f"{name} must be a string"
            elif len(v) > OG_LIMITS[name]:
                p[name] = (f"{name} can not be longer than "
                           f"{OG_LIMITS[name]} characters")


def _og_list(body, name, most, longest, p):
    v = body.get(name)
    if v is None:
        return
    if not isinstance(v, list) or not all(_is_str(x) for x in v):
        p[name] = f"{name} must be a list of strings"
    elif len(v) > most:
        p[name] = f"{name} can not have more than {most} items"
    elif any(len(x) > longest for x in v):
        p[name] = f"each of {name} can not be longer than {longest} characters"


def opsgenie_alert_problems(body):
    """What Opsgenie would refuse in a create-alert body: {field: error}."""
    if not isinstance(body, dict):
        return {"body": "Could not parse the request body as a JSON object"}
    p = {}
    msg = body.get("message")
    if not _is_str(msg) or not msg.strip():
        p["message"] = "Message can not be empty."
    _og_strings(body, OG_LIMITS, p)
    _og_list(body, "tags", 20, 50, p)
    _og_list(body, "actions", 10, 50, p)
    details = body.get("details")
    if details is not None:
        if not isinstance(details, dict) or not all(
                _is_str(k) and _is_str(v) for k, v in details.items()):
            p["details"] = "details must be a map of strings to strings"
        elif sum(len(k) + len(v) for k, v in details.items()) > 8000:
            p["details"] = "details can not be longer than 8000 characters in all"
    if "priority" in body and body["priority"] not in OG_PRIORITIES:
        p["priority"] = "priority must be one of P1, P2, P3, P4, P5"
    return p


def opsgenie_close_problems(body):
    """What Opsgenie would refuse in a close-alert body: {field: error}."""
    if not isinstance(body, dict):
        return {"body": "Could not parse the request body as a JSON object"}
    p = {}
    _og_strings(body, ("source", "user", "note"), p)
    return p


class MockOpsgenie(_Mock):
    """POST /v2/alerts and POST /v2/alerts/{alias}/close?identifierType=alias
    with ``Authorization: GenieKey <api_key>``. ``alerts``: alias -> {"status":
    open|closed, "count", "body", "closed_with"}; ``closes``: every accepted
    close as (alias, body)."""

    def __init__(self, api_key):
        super().__init__()
        self.api_key = api_key
        self.alerts = {}
        self.closes = []
        self.created = []

    def _reply(self, status, message, errors=None):
        body = {"message": message, "took": 0.001,
                "requestId": str(uuid.uuid4())}
        if errors:
            body["errors"] = errors
        return Answer(status, body)

    def throttle_body(self):
        return {"message": "You are making too many requests! To avoid "
                "errors, we recommend you limit requests.", "took": 0.0,
                "requestId": str(uuid.uuid4())}

    def answer(self, req):
        if req.headers.get("Authorization") != f"GenieKey {self.api_key}":
            return self._reply(401, "Could not authenticate")
        if req.method != "POST":
            return self._reply(405, "Method not allowed")
        if req.path == "/v2/alerts":
            return self._create(req)
        m = re.fullmatch(r"/v2/alerts/([^/]+)/close", req.path)
        if m:
            return self._close(req, urllib.parse.unquote(m.group(1)))
        return self._reply(404, "Not found")

    def _create(self, req):
        body = _json_body(req)
        if body is None:
            return self._reply(400, "Could not parse the request body")
        problems = opsgenie_alert_problems(body)
        if problems:
            return self._reply(422, "Request body is not processable. "
                               "Please check the errors.", problems)
        self.created.append(body)
        alias = body.get("alias") or str(uuid.uuid4())
        have = self.alerts.get(alias)
        if have and have["status"] == "open":
            have["count"] += 1  # Opsgenie de-duplicates open alerts by alias
        else:
            self.alerts[alias] = {"status": "open", "count": 1, "body": body}
        return Answer(202, {"result": "Request will be processed",
                            "took": 0.107, "requestId": str(uuid.uuid4())})

    def _close(self, req, alias):
        params = req.query_params
        if params.get("identifierType", ["id"]) != ["alias"]:
            return self._reply(422, "identifierType must be alias for an alias")
        body = _json_body(req) if req.body else {}
        if body is None:
            return self._reply(400, "Could not parse the request body")
        problems = opsgenie_close_problems(body)
        if len(alias) > 512:
            problems["identifier"] = "alias can not be longer than 512 characters"
        if problems:
            return self._reply(422, "Request body is not processable. "
                               "Please check the errors.", problems)
        self.closes.append((alias, body))
        if alias in self.alerts:  # closing an unknown alias is still 202
            self.alerts[alias]["status"] = "closed"
            self.alerts[alias]["closed_with"] = body
        return Answer(202, {"result": "Request will be processed",
                            "took": 0.02, "requestId": str(uuid.uuid4())})


# ---- Jira Cloud REST API v3 ------------------------------------------------

# Atlassian Document Format: the nodes hookline may send, what each may hold.
ADF_BLOCKS = {"paragraph", "bulletList", "orderedList", "heading",
              "codeBlock", "blockquote", "rule", "panel"}
ADF_INLINE = {"text", "hardBreak", "mention", "emoji", "inlineCard"}
ADF_MARKS = {"strong", "em", "code", "link", "strike", "underline",
             "subsup", "textColor"}
ADF_TEXT_MAX = 32767


def adf_text(node):
    """All text of an ADF node, concatenated."""
    if isinstance(node, dict):
        if node.get("type") == "text":
            return node.get("text", "")
        return "".join(adf_text(c) for c in node.get("content") or [])
    return ""


def _adf_node(node, where, allowed, p):
    if not isinstance(node, dict) or not _is_str(node.get("type")):
        p.append(f"{where}: a node must be an object with a type")
        return
    t = node["type"]
    if t not in allowed:
        p.append(f"{where}: node type '{t}' is not allowed here")
        return
    content = node.get("content")
    if t == "text":
        text = node.get("text")
        if not _is_str(text) or not text:
            p.append(f"{where}: a text node needs non-empty text")
        for j, mark in enumerate(node.get("marks") or []):
            mt = mark.get("type") if isinstance(mark, dict) else None
            if mt not in ADF_MARKS:
                p.append(f"{where}.marks[{j}]: unknown mark {mt!r}")
            elif mt == "link" and not _is_str(
                    (mark.get("attrs") or {}).get("href")):
                p.append(f"{where}.marks[{j}]: a link needs attrs.href")
        if content is not None:
            p.append(f"{where}: a text node has no content")
        return
    if t in ("hardBreak", "rule"):
        return
    if content is not None and not isinstance(content, list):
        p.append(f"{where}: content must be an array")
        return
    content = content or []
    if t in ("bulletList", "orderedList"):
        if not content:
            p.append(f"{where}: a list needs at least one listItem")
        for i, c in enumerate(content):
            _adf_node(c, f"{where}.content[{i}]", {"listItem"}, p)
    elif t == "listItem":
        if not content:
            p.append(f"{where}: a listItem needs content")
        for i, c in enumerate(content):
            _adf_node(c, f"{where}.content[{i}]",
                      {"paragraph", "bulletList", "orderedList", "codeBlock"}, p)
    elif t in ("blockquote", "panel"):
        for i, c in enumerate(content):
            _adf_node(c, f"{where}.content[{i}]", ADF_BLOCKS - {"rule"}, p)
    else:  # paragraph, heading, codeBlock: inline content
        for i, c in enumerate(content):
            _adf_node(c, f"{where}.content[{i}]", ADF_INLINE, p)


def adf_problems(doc, where="description"):
    """What Jira would refuse in an ADF document."""
    if not isinstance(doc, dict):
        return [f"{where}: Operation value must be an Atlassian Document "
                "(see the Atlassian Document Format)"]
    p = []
    if doc.get("type") != "doc" or doc.get("version") != 1:
        p.append(f"{where}: an Atlassian Document has type 'doc' and version 1")
    content = doc.get("content")
    if not isinstance(content, list):
        p.append(f"{where}: an Atlassian Document needs a content array")
        return p
    for i, c in enumerate(content):
        _adf_node(c, f"{where}.content[{i}]", ADF_BLOCKS, p)
    if len(adf_text(doc)) > ADF_TEXT_MAX:
        p.append(f"{where}: longer than {ADF_TEXT_MAX} characters")
    return p


def _named(v, names):
    return isinstance(v, dict) and any(_is_str(v.get(n)) and v.get(n)
                                       for n in names)


def jira_issue_problems(body, projects=None):
    """What Jira would refuse in a create-issue body, as (errorMessages,
    errors)."""
    if not isinstance(body, dict) or not isinstance(body.get("fields"), dict):
        return (["Can not deserialize the request: expected {\"fields\": {...}}"], {})
    f = body["fields"]
    errs = {}
    if not _named(f.get("project"), ("key", "id")):
        errs["project"] = "Specify a valid project ID or key"
    elif projects is not None and f["project"].get("key", f["project"].get("id")) not in projects:
        errs["project"] = "valid project is required"
    if not _named(f.get("issuetype"), ("name", "id")):
        errs["issuetype"] = "Specify an issue type"
    summary = f.get("summary")
    if not _is_str(summary) or not summary.strip():
        errs["summary"] = "You must specify a summary of the issue."
    elif len(summary) > 255:
        errs["summary"] = "Summary must be less than 255 characters."
    if "description" in f:
        dp = adf_problems(f["description"])
        if dp:
            errs["description"] = "; ".join(dp)
    labels = f.get("labels")
    if labels is not None:
        if not isinstance(labels, list) or not all(_is_str(x) for x in labels):
            errs["labels"] = "labels must be a list of strings"
        else:
            for label in labels:
                if not label or re.search(r"\s", label) or len(label) > 255:
                    errs["labels"] = (f"The label '{label}' contains spaces "
                                      "which is invalid.")
    if "priority" in f and not _named(f["priority"], ("name", "id")):
        errs["priority"] = "Specify the Priority (name or id)"
    return ([], errs)


class MockJira(_Mock):
    """Jira Cloud: POST /rest/api/3/issue (201 {"id","key","self"}, keys
    OPS-1, OPS-2, ...), POST /rest/api/3/issue/{key}/comment (201), GET/POST
    /rest/api/3/issue/{key}/transitions (204), with HTTP basic (email:token)
    or bearer authentication. ``issues``: key -> {"fields", "comments":
    [ADF...], "transitions": [id...], "status"}."""

    TRANSITIONS = {"11": "To Do", "21": "In Progress", "31": "Done"}

    def __init__(self, basic=None, bearer=None, projects=("OPS",)):
        super().__init__()
        self.auth = (f"Basic {base64.b64encode(basic.encode()).decode()}"
                     if basic else f"Bearer {bearer}")
        self.projects = set(projects)
        self.issues = {}
        self._next = {}
        self._ids = 10000

    def _error(self, status, messages=(), errors=None):
        return Answer(status, {"errorMessages": list(messages),
                               "errors": errors or {}})

    def delete_issue(self, key):
        """Remove an issue, as someone in Jira might."""
        with self.state_lock:
            del self.issues[key]

    def answer(self, req):
        if req.headers.get("Authorization") != self.auth:
            return Answer(401, "Client must be authenticated to access this "
                               "resource.", {"Content-Type": "text/html"})
        if req.path == "/rest/api/3/issue" and req.method == "POST":
            return self._create(req)
        m = re.fullmatch(r"/rest/api/3/issue/([^/]+)/(comment|transitions)",
                         req.path)
        if not m:
            return self._error(404, ["No such resource"])
        key = urllib.parse.unquote(m.group(1))
        if key not in self.issues:
            return self._error(404, ["Issue does not exist or you do not have "
                                     "permission to see it."])
        if m.group(2) == "comment" and req.method == "POST":
            return self._comment(req, key)
        if m.group(2) == "transitions" and req.method == "GET":
            return Answer(200, {"transitions": [
                {"id": i, "name": n} for i, n in self.TRANSITIONS.items()]})
        if m.group(2) == "transitions" and req.method == "POST":
            return self._transition(req, key)
        return self._error(405, ["Method not allowed"])

    def _create(self, req):
        body = _json_body(req)
        msgs, errs = jira_issue_problems(body, self.projects)
        if msgs or errs:
            return self._error(400, msgs, errs)
        f = body["fields"]
        project = f["project"].get("key") or f["project"].get("id")
        n = self._next.get(project, 0) + 1
        self._next[project] = n
        self._ids += 1
        key = f"{project}-{n}"
        self.issues[key] = {"id": str(self._ids), "fields": f, "comments": [],
                            "transitions": [], "status": "To Do"}
        return Answer(201, {"id": str(self._ids), "key": key,
                            "self": f"{self.url('')}/rest/api/3/issue/{self._ids}"})

    def _comment(self, req, key):
        body = _json_body(req)
        if body is None or "body" not in body:
            return self._error(400, [], {"comment": "Comment body can not be "
                                                    "empty!"})
        problems = adf_problems(body["body"], "body")
        if problems:
            return self._error(400, [], {"comment": "; ".join(problems)})
        issue = self.issues[key]
        issue["comments"].append(body["body"])
        cid = str(len(issue["comments"]) + 20000)
        return Answer(201, {"id": cid, "body": body["body"],
                            "self": f"{self.url('')}/rest/api/3/issue/"
                                    f"{issue['id']}/comment/{cid}"})

    def _transition(self, req, key):
        body = _json_body(req)
        t = body.get("transition") if body else None
        tid = t.get("id") if isinstance(t, dict) else None
        if tid not in self.TRANSITIONS:
            return self._error(400, [f"Transition id '{tid}' is not valid for "
                                     "this issue."])
        self.issues[key]["transitions"].append(tid)
        self.issues[key]["status"] = self.TRANSITIONS[tid]
        return Answer(204)

