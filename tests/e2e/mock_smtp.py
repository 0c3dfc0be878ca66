"""A real SMTP server on loopback for the e-mail connector's tests: aiosmtpd
(Debian python3-aiosmtpd) on an ephemeral port, recording what it receives
and answering what a test scripts.

    with MockSMTP() as smtp:                       # plain SMTP
        smtp.script("RCPT", "450 4.2.1 Mailbox busy")   # the next RCPT only
        smtp.always("DATA", "554 5.7.1 Rejected")       # every DATA
        ...                                        # point hookline at smtp.url
        msg = smtp.wait_for(1)[0]                  # a Received, or AssertionError
        msg.mail_from, msg.rcpt_tos, msg.content, msg.tls, msg.login

MockSMTP(auth={"user": "pw"})  requires AUTH (PLAIN or LOGIN) without TLS
                               (aiosmtpd warns about that on every connection:
                               filterwarnings("ignore:Requiring AUTH"));
MockSMTP(starttls=True)        offers STARTTLS and requires it before MAIL;
MockSMTP(implicit_tls=True)    is TLS from the first byte (smtps://).
The TLS certificate is tests/data/tls/server.pem (127.0.0.1), from the test
CA tests/data/tls/ca.pem.

Stages a script can answer: "MAIL", "RCPT" and "DATA" (the reply to the end
of the message). Every message that reaches the end of DATA is recorded in
``data_seen`` (whatever it was answered); ``received`` holds only those
answered 250. Standard library and aiosmtpd only.
"""
import collections
import ssl
import threading
import time
from pathlib import Path

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

TLS_DIR = Path(__file__).resolve().parents[1] / "data" / "tls"
CA = TLS_DIR / "ca.pem"


class Received:
    def __init__(self, server, envelope, session, reply):
        self.mail_from = envelope.mail_from
        self.rcpt_tos = list(envelope.rcpt_tos)
        self.content = bytes(envelope.original_content or envelope.content)
        # STARTTLS sets session.ssl; implicit TLS is the transport's.
        self.tls = (session.ssl is not None or
                    server.transport.get_extra_info("ssl_object") is not None)
        login = getattr(session.auth_data, "login", None)
        self.login = login.decode() if isinstance(login, bytes) else login
        self.reply = reply


class _Handler:
    def __init__(self, owner):
        self.owner = owner

    async def handle_MAIL(self, server, session, envelope, address, options):
        reply = self.owner._answer("MAIL")
        if reply:
            return reply
        envelope.mail_from = address
        envelope.mail_options.extend(options)
        return "250 OK"

    async def handle_RCPT(self, server, session, envelope, address, options):
        reply = self.owner._answer("RCPT")
        if reply:
            return reply
        envelope.rcpt_tos.append(address)
        envelope.rcpt_options.extend(options)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        reply = self.owner._answer("DATA") or "250 Message accepted"
        self.owner._record(Received(server, envelope, session, reply))
        return reply


class _Controller(Controller):
    """aiosmtpd's Controller on port 0: the port is known once bound."""

    def _trigger_server(self):
        self.port = self.server.sockets[0].getsockname()[1]
        super()._trigger_server()


def server_tls_context():
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(TLS_DIR / "server.pem", TLS_DIR / "server.key")
    return ctx


class MockSMTP:
    def __init__(self, auth=None, starttls=False, implicit_tls=False):
        self._lock = threading.Condition()
        self._scripts = collections.defaultdict(collections.deque)
        self._always = {}
        self.data_seen = []
        self.received = []
        self.auth_tries = []
        kwargs = {}
        if auth is not None:
            kwargs.update(authenticator=self._authenticator(auth),
                          auth_required=True, auth_require_tls=False)
        if starttls:
            kwargs.update(tls_context=server_tls_context(),
                          require_starttls=True)
        self.scheme = "smtps" if implicit_tls else "smtp"
        self._controller = _Controller(
            _Handler(self), hostname="127.0.0.1", port=0,
            ssl_context=server_tls_context() if implicit_tls else None,
            **kwargs)

    def _authenticator(self, users):
        def check(server, session, envelope, mechanism, data):
            login = data.login.decode() if isinstance(data.login, bytes) else data.login
            password = (data.password.decode() if isinstance(data.password, bytes)
                        else data.password)
            with self._lock:
                self.auth_tries.append((mechanism, login))
            ok = users.get(login) == password
            return AuthResult(success=ok, handled=False, auth_data=data)
        return check

    def __enter__(self):
        self._controller.start()
        return self

    def __exit__(self, *exc):
        self._controller.stop()

    @property
    def url(self):
        return f"{self.scheme}://127.0.0.1:{self._controller.port}"

    def script(self, stage, reply):
        """Answer the next command of stage (MAIL, RCPT, DATA) with reply."""
        with self._lock:
            self._scripts[stage].append(reply)

    def always(self, stage, reply):
        """Answer every command of stage with reply (None: stop)."""
        with self._lock:
            self._always[stage] = reply

    def _answer(self, stage):
        with self._lock:
            if self._scripts[stage]:
                return self._scripts[stage].popleft()
            return self._always.get(stage)

    def _record(self, received):
        with self._lock:
            self.data_seen.append(received)
            if received.reply.startswith("250"):
                self.received.append(received)
            self._lock.notify_all()

    def wait_for(self, n, timeout=15, seen=False):
        """The first n messages answered 250 (or, with seen, every message
        that reached the end of DATA)."""
        deadline = time.monotonic() + timeout
        with self._lock:
            while True:
                got = self.data_seen if seen else self.received
                if len(got) >= n:
                    return list(got[:n])
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(
                        f"{len(got)} messages arrived, wanted {n}")
                self._lock.wait(left)
