"""Browser sessions of the security console.

An auditor pastes an API key into the console's login form; the key is checked as for
any API call (a failure is traced and counted), and only an **auditor's** key opens a
session — an operator's, holder's or admin's key is refused (403, traced as
``console.login`` denied).  The session is a random 256-bit id in an ``HttpOnly``,
``SameSite=Strict`` cookie; the gateway keeps only the id's SHA-256, bound to the key's
hash, and checks that key again on every request, so revoking the key or disabling its
principal ends the session at once.  Sessions end after ``idle`` seconds without use or
``absolute`` seconds after login.  Every state-changing console call must carry the
session's CSRF token (``X-CSRF-Token``), which a page of another origin cannot read.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import threading
import time
from dataclasses import dataclass

from gateway.domain import Actor, Role
from gateway.errors import Forbidden, Unauthenticated
from gateway.service.core.context import ServiceContext
from gateway.service.core.tracing import Note, Tracer
from gateway.service.identity.service import Identities, hash_key

MAX_SESSIONS = 10_000


def _digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode("utf-8")).hexdigest()


@dataclass
class ConsoleSession:
    key_hash: str
    actor: Actor
    csrf: str
    created: float
    used: float


class ConsoleSessions:
    """Console sessions held in this gateway process (a restart logs every auditor out)."""

    def __init__(
        self,
        ctx: ServiceContext,
        identities: Identities,
        tracer: Tracer,
        *,
        idle: float = 1800.0,
        absolute: float = 12 * 3600.0,
    ) -> None:
        self.ctx = ctx
        self.identities = identities
        self.tracer = tracer
        self.idle = idle
        self.absolute = absolute
        self._sessions: dict[str, ConsoleSession] = {}
        self._lock = threading.Lock()

    def login(self, api_key: str) -> tuple[str, ConsoleSession]:
        """A new session for an auditor's key; raises 401 for a bad key, 403 for another
        role's."""
        actor = self.identities.authenticate(f"Bearer {api_key.strip()}")
        if actor.role != Role.AUDITOR:
            error = Forbidden("the security console is for auditors")
            self.tracer.deny(actor, "console.login", error)
            raise error
        session_id = secrets.token_urlsafe(32)
        now = time.monotonic()
        session = ConsoleSession(
            hash_key(api_key.strip()), actor, secrets.token_urlsafe(32), now, now
        )
        with self._lock:
            self._expire(now)
            if len(self._sessions) >= MAX_SESSIONS:
                oldest = min(self._sessions, key=lambda k: self._sessions[k].used)
                del self._sessions[oldest]
            self._sessions[_digest(session_id)] = session
        self.ctx.store.append_trace(self.tracer.record(actor, "console.login", Note()))
        return session_id, session

    def resolve(self, session_id: str | None) -> ConsoleSession:
        """The live session for a cookie value; 401 when there is none."""
        if not session_id or len(session_id) > 100:
            raise Unauthenticated("sign in to the security console")
        now = time.monotonic()
        with self._lock:
            self._expire(now)
            session = self._sessions.get(_digest(session_id))
        if session is None:
            raise Unauthenticated("the console session has ended; sign in again")
        with self.ctx.store.read() as tx:
            found = tx.find_api_key(session.key_hash)
        if (
            found is None
            or found[0].revoked_at is not None
            or found[1].disabled
            or found[1].role != Role.AUDITOR
        ):
            self.logout(session_id)
            raise Unauthenticated("the console session's key is no longer valid")
        session.used = now
        return session

    def check_csrf(self, session: ConsoleSession, token: str | None) -> None:
        """Refuse a state-changing call without the session's CSRF token."""
        if not token or not hmac.compare_digest(token.encode(), session.csrf.encode()):
            raise Forbidden("missing or wrong CSRF token")

    def logout(self, session_id: str | None) -> None:
        if session_id:
            with self._lock:
                self._sessions.pop(_digest(session_id), None)

    def _expire(self, now: float) -> None:
        dead = [
            k
            for k, s in self._sessions.items()
            if now - s.used > self.idle or now - s.created > self.absolute
        ]
        for k in dead:
            del self._sessions[k]
