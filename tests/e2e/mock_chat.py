"""Mock chat receivers for the connector tests: a Slack incoming webhook, a
Mattermost incoming webhook and a Microsoft Teams workflow webhook, built
on sink.Sink.

Each mock checks every request body against the published rules of its
service (/work/shared/fixtures/OUTBOUND-RULES.md) and answers as the
service does: a body that breaks a rule is refused the way the service
refuses it, and its problems are kept in ``mock.rejected``; a good body is
answered 200 ``ok`` (Slack, Mattermost) or 200 ``1`` (Teams' legacy
connector; ``TeamsMock(legacy=False)``: 202 and no body, as a workflow
answers), unless an answer was queued for it.

The rule checks are plain functions too (``slack_problems``,
``mattermost_problems``, ``teams_problems``: body bytes -> list of
problems, empty when the service would take it), so rendered bodies can be
checked without sending them::

    with SlackMock() as slack:
        slack.respond_on("/archived", slack_error("channel_is_archived"))
        slack.queue([slack_error("rate_limited", retry_after=30)])
        ...                                  # point hookline at slack.url()
        msg = slack.wait_messages(1)[0]      # the accepted bodies, parsed

Order of answers for a request: a refusal when its body breaks a rule,
then the answers queued with ``queue`` (for its path, then for any path),
then Slack's rate limit when one is set, then the Sink's own behaviours
(``respond_on``, ``respond``) -- so the rules are checked on every request,
scripted or not. ``Sink.script`` would bypass the checks: use ``queue``.
"""
import collections
import json
import math
import re
import threading
import time

from sink import Answer, Sink

__all__ = [
    "SlackMock", "MattermostMock", "TeamsMock", "slack_problems",
    "mattermost_problems", "teams_problems", "slack_error",
    "mattermost_error", "teams_legacy_error", "teams_workflow_error",
    "SLACK_LIMITS", "TEAMS_MAX_BYTES", "CARD_TYPE",
]

# ---- Slack -------------------------------------------------------------------

SLACK_LIMITS = {"text": 40000, "blocks": 50, "header": 150, "section": 3000,
                "fields": 10, "field": 2000, "context": 10, "button_text": 75,
                "url": 3000, "actions": 25}

# Slack's error bodies and their statuses.
SLACK_ERRORS = {"invalid_payload": 400, "user_not_found": 400,
                "action_prohibited": 403, "channel_not_found": 404,
                "channel_is_archived": 410, "rate_limited": 429,
                "rollup_error": 500, "no_service": 404}


def slack_error(code, retry_after=None):
    """The answer Slack gives for an error code (a short text body)."""
    headers = {"Content-Type": "text/plain"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return Answer(SLACK_ERRORS[code], code, headers)


def _parse(body):
    try:
        return json.loads(body), None
    except (ValueError, UnicodeDecodeError) as e:
        return None, f"not JSON: {e}"


def _slack_text(obj, where, limit, kinds=("plain_text", "mrkdwn")):
    if not isinstance(obj, dict):
        return [f"{where}: expected a text object"]
    if obj.get("type") not in kinds:
        return [f"{where}.type: {obj.get('type')!r} is not one of {kinds}"]
    text = obj.get("text")
    if not isinstance(text, str) or not text:
        return [f"{where}.text: must be a non-empty string"]
    if len(text) > limit:
        return [f"{where}.text: {len(text)} characters, more than {limit}"]
    return []


def _slack_block(b, where):
    L = SLACK_LIMITS
    if not isinstance(b, dict):
        return [f"{where}: expected an object"]
    kind = b.get("type")
    if kind == "header":
        return _slack_text(b.get("text"), f"{where}.text", L["header"],
                           ("plain_text",))
    if kind == "section":
        out = []
        if "text" not in b and "fields" not in b:
            out.append(f"{where}: a section needs text or fields")
        if "text" in b:
            out += _slack_text(b["text"], f"{where}.text", L["section"])
        if "fields" in b:
            f = b["fields"]
            if not isinstance(f, list) or not f or len(f) > L["fields"]:
                out.append(f"{where}.fields: 1 to {L['fields']} text objects")
            else:
                for i, t in enumerate(f):
                    out += _slack_text(t, f"{where}.fields[{i}]", L["field"])
        if "accessory" in b and not isinstance(b["accessory"], dict):
            out.append(f"{where}.accessory: expected an object")
        return out
    if kind == "context":
        els = b.get("elements")
        if not isinstance(els, list) or not els or len(els) > L["context"]:
            return [f"{where}.elements: 1 to {L['context']} elements"]
        out = []
        for i, e in enumerate(els):
            if isinstance(e, dict) and e.get("type") == "image":
                continue
            out += _slack_text(e, f"{where}.elements[{i}]", L["field"])
        return out
    if kind == "actions":
        els = b.get("elements")
        if not isinstance(els, list) or not els or len(els) > L["actions"]:
            return [f"{where}.elements: 1 to {L['actions']} elements"]
        out = []
        for i, e in enumerate(els):
            w = f"{where}.elements[{i}]"
            if not isinstance(e, dict) or e.get("type") != "button":
                continue
            out += _slack_text(e.get("text"), f"{w}.text", L["button_text"],
                               ("plain_text",))
            url = e.get("url")
            if url is not None and (not isinstance(url, str) or
                                    len(url) > L["url"] or
                                    not re.match(r"https?://", url)):
                out.append(f"{w}.url: an http(s) URL of at most {L['url']}")
        return out
    if kind in ("divider", "image", "rich_text", "input", "file", "video"):
        return []
    return [f"{where}.type: unknown block type {kind!r}"]


def slack_problems(body):
    """What Slack would refuse in an incoming webhook body ([] if none)."""
    msg, err = _parse(body)
    if err:
        return [err]
    if not isinstance(msg, dict):
        return ["the body must be a JSON object"]
    if not any(k in msg for k in ("text", "blocks", "attachments")):
        return ["the body needs text, blocks or attachments"]
    out = []
    text = msg.get("text")
    if "blocks" in msg and not (isinstance(text, str) and text):
        out.append("text (the notification fallback) should be present "
                   "with blocks")
    if text is not None and not isinstance(text, str):
        out.append("text: must be a string")
    elif text and len(text) > SLACK_LIMITS["text"]:
        out.append(f"text: {len(text)} characters, more than "
                   f"{SLACK_LIMITS['text']}")
    blocks = msg.get("blocks")
    if blocks is not None:
        if not isinstance(blocks, list) or not blocks:
            out.append("blocks: expected a non-empty list")
        elif len(blocks) > SLACK_LIMITS["blocks"]:
            out.append(f"blocks: {len(blocks)}, more than "
                       f"{SLACK_LIMITS['blocks']}")
        else:
            for i, b in enumerate(blocks):
                out += _slack_block(b, f"blocks[{i}]")
    for key in ("channel", "username", "icon_emoji", "icon_url"):
        if key in msg and not (isinstance(msg[key], str) and msg[key]):
            out.append(f"{key}: must be a non-empty string")
    if "icon_emoji" in msg and isinstance(msg["icon_emoji"], str) and \
            not re.fullmatch(r":[^:\s]+:", msg["icon_emoji"]):
        out.append("icon_emoji: expected :name:")
    return out


# ---- Mattermost --------------------------------------------------------------

MM_ATTACHMENT_KEYS = {"fallback", "color", "pretext", "author_name",
                      "author_link", "author_icon", "title", "title_link",
                      "text", "fields", "footer", "footer_icon", "image_url",
                      "thumb_url", "actions", "id", "ts"}


def mattermost_error(status, app_id, message, detailed=""):
    """The JSON app error Mattermost answers with."""
    return Answer(status, {"id": app_id, "message": message,
                           "detailed_error": detailed,
                           "request_id": "hookline-test", "status_code": status})


def mattermost_problems(body):
    """What Mattermost would refuse in an incoming webhook body ([] if
    none), each as (message, app error id)."""
    msg, err = _parse(body)
    if err:
        return [(err, "web.incoming_webhook.parse.app_error")]
    if not isinstance(msg, dict):
        return [("the body must be a JSON object",
                 "web.incoming_webhook.parse.app_error")]
    out = []
    parse = "web.incoming_webhook.parse.app_error"
    atts = msg.get("attachments")
    text = msg.get("text")
    if not (isinstance(text, str) and text) and not atts:
        out.append(("No text specified", "web.incoming_webhook.text.app_error"))
    if text is not None and not isinstance(text, str):
        out.append(("text: must be a string", parse))
    if "type" in msg and not (isinstance(msg["type"], str) and
                              msg["type"].startswith("custom_")):
        out.append((f"type {msg['type']!r} must start with custom_",
                    "api.context.invalid_param.app_error"))
    for key in ("channel", "username", "icon_url", "icon_emoji"):
        if key in msg and not isinstance(msg[key], str):
            out.append((f"{key}: must be a string", parse))
    if atts is not None:
        if not isinstance(atts, list):
            return out + [("attachments: expected a list", parse)]
        for i, a in enumerate(atts):
            w = f"attachments[{i}]"
            if not isinstance(a, dict):
                out.append((f"{w}: expected an object", parse))
                continue
            for k in sorted(set(a) - MM_ATTACHMENT_KEYS):
                out.append((f"{w}.{k}: not an attachment field", parse))
            for k in ("fallback", "color", "pretext", "author_name", "title",
                      "title_link", "text", "footer"):
                if k in a and not isinstance(a[k], str):
                    out.append((f"{w}.{k}: must be a string", parse))
            fields = a.get("fields", [])
            if not isinstance(fields, list):
                out.append((f"{w}.fields: expected a list", parse))
                continue
            for j, f in enumerate(fields):
                fw = f"{w}.fields[{j}]"
                if not isinstance(f, dict) or \
                        not isinstance(f.get("title", ""), str) or \
                        not isinstance(f.get("value", ""), (str, int, float)) or \
                        not isinstance(f.get("short", False), bool):
                    out.append((f"{fw}: expected {{title, value, short}}",
                                parse))
    return out


# ---- Teams -------------------------------------------------------------------

TEAMS_MAX_BYTES = 28000
CARD_TYPE = "application/vnd.microsoft.card.adaptive"
CARD_VERSIONS = {"1.0", "1.1", "1.2", "1.3", "1.4", "1.5"}
CARD_ELEMENTS = {"TextBlock", "FactSet", "ColumnSet", "Container", "Image",
                 "ImageSet", "ActionSet", "RichTextBlock", "Table"}
CARD_ACTIONS = {"Action.OpenUrl", "Action.Submit", "Action.ShowCard",
                "Action.ToggleVisibility", "Action.Execute"}


def teams_legacy_error(code):
    """How the legacy Teams connector reported a failure: 200, the error in
    the text of the body."""
    return Answer(200, "Webhook message delivery failed with error: "
                       f"Microsoft Teams endpoint returned HTTP error {code} "
                       "with ContextId tcid=0,server=msgapi-production-eus-"
                       "azsc2-4-170,cv=deKcWXU1gkCwpeSfcMQWMw.0..",
                  {"Content-Type": "text/plain; charset=utf-8"})


def teams_workflow_error(status, code, message, retry_after=None):
    """How a Power Automate workflow refuses a request."""
    headers = {"Content-Type": "application/json"}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return Answer(status, {"error": {"code": code, "message": message}},
                  headers)


def _card_problems(card, where):
    out = []
    if not isinstance(card, dict):
        return [f"{where}: expected an object"]
    if card.get("type") != "AdaptiveCard":
        out.append(f"{where}.type: must be AdaptiveCard")
    if card.get("version") not in CARD_VERSIONS:
        out.append(f"{where}.version: {card.get('version')!r} is not a "
                   "version Teams renders")
    body = card.get("body", [])
    if not isinstance(body, list):
        return out + [f"{where}.body: expected a list"]
    for i, el in enumerate(body):
        w = f"{where}.body[{i}]"
        if not isinstance(el, dict) or el.get("type") not in CARD_ELEMENTS:
            out.append(f"{w}: not a card element")
            continue
        if el["type"] == "TextBlock" and not isinstance(el.get("text"), str):
            out.append(f"{w}.text: must be a string")
        if el["type"] == "FactSet":
            facts = el.get("facts")
            if not isinstance(facts, list) or any(
                    not isinstance(f, dict) or
                    not isinstance(f.get("title"), str) or
                    not isinstance(f.get("value"), str) for f in facts):
                out.append(f"{w}.facts: expected [{{title, value}}] strings")
    for i, act in enumerate(card.get("actions", [])):
        w = f"{where}.actions[{i}]"
        if not isinstance(act, dict) or act.get("type") not in CARD_ACTIONS:
            out.append(f"{w}: not a card action")
        elif act["type"] == "Action.OpenUrl" and not (
                isinstance(act.get("url"), str) and
                re.match(r"https?://", act["url"])):
            out.append(f"{w}.url: must be an http(s) URL")
    return out


def teams_problems(body):
    """What Teams would refuse in a workflow webhook body ([] if none)."""
    if len(body) > TEAMS_MAX_BYTES:
        return [f"the message is {len(body)} bytes, more than "
                f"{TEAMS_MAX_BYTES}"]
    msg, err = _parse(body)
    if err:
        return [err]
    if not isinstance(msg, dict) or msg.get("type") != "message":
        return ['the body must be {"type": "message", ...}']
    atts = msg.get("attachments")
    if not isinstance(atts, list) or not atts:
        return ["attachments: expected a non-empty list"]
    out = []
    for i, a in enumerate(atts):
        w = f"attachments[{i}]"
        if not isinstance(a, dict) or a.get("contentType") != CARD_TYPE:
            out.append(f"{w}.contentType: must be {CARD_TYPE}")
            continue
        out += _card_problems(a.get("content"), f"{w}.content")
    return out


# ---- the mocks -----------------------------------------------------------------

class _ChatMock(Sink):
    """A Sink that checks each body with `problems` and refuses with
    `refusal`; accepted bodies are kept parsed in `messages`."""

    def __init__(self):
        super().__init__()
        self.rejected = []          # (request, problems)
        self._messages = []
        self._queued = collections.deque()
        self._queued_on = {}
        self.handler = self._handle

    # What a subclass says.
    def problems(self, body):
        raise NotImplementedError

    def refusal(self, problems):
        raise NotImplementedError

    def limit(self, req):
        """An answer before the default (e.g. a rate limit), or None."""
        return None

    def queue(self, answers, path=None):
        """Answer the next good requests (on `path`, or any) with these."""
        with self._lock:
            q = self._queued if path is None else \
                self._queued_on.setdefault(path, collections.deque())
            q.extend(answers)

    def _handle(self, req):
        problems = self.problems(req.body)
        ctype = req.headers.get("Content-Type", "")
        if not ctype.lower().startswith("application/json"):
            problems = [f"Content-Type {ctype!r} is not application/json"] + \
                problems
        if problems:
            with self._lock:
                self.rejected.append((req, problems))
            return self.refusal(problems)
        with self._lock:
            self._messages.append(req.json())
            q = self._queued_on.get(req.path)
            if q:
                return q.popleft()
            if self._queued:
                return self._queued.popleft()
        return self.limit(req)

    @property
    def messages(self):
        """Bodies that passed the rules, parsed, in arrival order."""
        with self._lock:
            return list(self._messages)

    def wait_messages(self, n, timeout=10):
        """Wait until n good bodies arrived; fails early on a refused one."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if self.rejected:
                    raise AssertionError(f"refused: {self.rejected!r}")
                if len(self._messages) >= n:
                    return list(self._messages)
            time.sleep(0.02)
        raise AssertionError(f"{len(self._messages)} good message(s), wanted "
                             f"{n}; requests: {self.requests!r}")


class SlackMock(_ChatMock):
    """A Slack incoming webhook. rate: (messages per second, burst) beyond
    which it answers 429 ``rate_limited`` with Retry-After in whole
    seconds, as Slack does; None: no limit."""

    def __init__(self, rate=None):
        super().__init__()
        self.respond(200, "ok", {"Content-Type": "text/html"})
        self.rate = rate
        self._tokens = float(rate[1]) if rate else 0.0
        self._stamp = time.monotonic()
        self._rate_lock = threading.Lock()

    def problems(self, body):
        return slack_problems(body)

    def refusal(self, problems):
        return slack_error("invalid_payload")

    def limit(self, req):
        if not self.rate:
            return None
        per_second, burst = self.rate
        with self._rate_lock:
            now = time.monotonic()
            self._tokens = min(burst, self._tokens +
                               (now - self._stamp) * per_second)
            self._stamp = now
            if self._tokens >= 1:
                self._tokens -= 1
                return None
            wait = (1 - self._tokens) / per_second
        return slack_error("rate_limited", retry_after=max(1, math.ceil(wait)))


class MattermostMock(_ChatMock):
    """A Mattermost incoming webhook: 200 ``ok``, or a 400 app error."""

    def __init__(self):
        super().__init__()
        self.respond(200, "ok", {"Content-Type": "text/plain"})

    def problems(self, body):
        return mattermost_problems(body)

    def refusal(self, problems):
        message, app_id = problems[0]
        return mattermost_error(400, app_id, message)


class TeamsMock(_ChatMock):
    """A Teams webhook. legacy=True: the Incoming Webhook connector, 200
    ``1``, and a refusal reported inside a 200 body; legacy=False: a
    workflow, 202 with no body, and refusals as 400/413 JSON errors."""

    def __init__(self, legacy=True):
        super().__init__()
        self.legacy = legacy
        if legacy:
            self.respond(200, "1", {"Content-Type": "text/plain"})
        else:
            self.respond(202, b"")

    def problems(self, body):
        return teams_problems(body)

    def refusal(self, problems):
        too_big = problems[0].startswith("the message is")
        if self.legacy:
            return teams_legacy_error(413 if too_big else 400)
        if too_big:
            return teams_workflow_error(413, "MessageTooLarge", problems[0])
        return teams_workflow_error(400, "InvalidRequestContent",
                                    "; ".join(problems))
