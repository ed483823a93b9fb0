"""The admin UI's logic, apart from HTTP: who is signed in, signing in and out, finding a
profile from what a person types, and rendering pages."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

from jinja2 import Environment
from starlette.requests import HTTPConnection
from starlette.responses import HTMLResponse, Response

from tidings.core.clock import Clock
from tidings.core.errors import NotFound, TidingsError, TooManyRequests, Unauthorized
from tidings.identity.graph import ANONYMOUS_ID, EMAIL, USER_ID
from tidings.profiles.service import ProfileService

from .imports import ImportJobs
from .sessions import COOKIE, COOKIE_PATH, CSRF_FIELD, Session, SessionCodec
from .templating import build_environment
from .throttle import LoginThrottle
from .users import User, UserService

WRONG_CREDENTIALS = "Wrong email or password."

# Every admin page: no caching (write keys appear once), no framing, scripts and styles only
# from tidings itself.
PAGE_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        "connect-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'"
    ),
    "X-Content-Type-Options": "nosniff",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "same-origin",
}


class LoginRequired(Unauthorized):
    """No valid signed-in session: pages redirect to the login form, streams answer 401."""

    def __init__(self) -> None:
        super().__init__("login_required", "sign in to the admin UI first")


class CsrfRejected(TidingsError):
    status = 403

    def __init__(self) -> None:
        super().__init__(
            "csrf_failed",
            "this form has expired or did not come from tidings: reload the page and try again",
            CSRF_FIELD,
        )


@dataclass(slots=True)
class Visit:
    """One request's view of its session. ``issue`` says the cookie must be (re)set."""

    session: Session
    user: User | None
    issue: bool = False

    @property
    def csrf(self) -> str:
        return self.session.csrf


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: only a path inside the admin UI (no open redirect)."""
    if (
        target
        and target.startswith("/admin")
        and not target.startswith("//")
        and "\\" not in target
        and all(ord(ch) > 31 for ch in target)
    ):
        return target
    return "/admin"


class AdminUI:
    def __init__(
        self,
        users: UserService,
        profiles: ProfileService,
        imports: ImportJobs,
        secret_key: Callable[[], bytes],
        clock: Clock,
        *,
        session_lifetime: timedelta,
        secure_cookies: bool,
        throttle: LoginThrottle | None = None,
    ) -> None:
        self.users = users
        self.profiles = profiles
        self.imports = imports
        self._secret_key = secret_key
        self._clock = clock
        self._lifetime = session_lifetime
        self._sessions: SessionCodec | None = None
        self.throttle = throttle or LoginThrottle(clock)
        self.secure_cookies = secure_cookies
        self.env: Environment = build_environment()

    # -- sessions ----------------------------------------------------------------------------
    @property
    def sessions(self) -> SessionCodec:
        """Built on first use: the secret key (maybe a file to create) is read only when a
        page is served, not by every command that builds the app."""
        if self._sessions is None:
            self._sessions = SessionCodec(self._secret_key(), self._clock, self._lifetime)
        return self._sessions

    def visit(self, conn: HTTPConnection) -> Visit:
        """The request's session (cached on it): signed in only while the cookie is valid, not
        expired, and issued under the user's current session version."""
        cached = getattr(conn.state, "admin_visit", None)
        if isinstance(cached, Visit):
            return cached
        session = self.sessions.loads(conn.cookies.get(COOKIE))
        visit: Visit
        if session is None:
            visit = Visit(self.sessions.anonymous(), None, issue=True)
        elif session.user_id is None:
            visit = Visit(session, None)
        else:
            user = self.users.get(session.user_id)
            if user is None or user.session_version != session.version:
                visit = Visit(Session(csrf=session.csrf), None, issue=True)
            else:
                visit = Visit(session, user)
        conn.state.admin_visit = visit
        return visit

    def check_csrf(self, visit: Visit, token: Any) -> None:
        if not isinstance(token, str) or not visit.session.csrf_matches(token):
            raise CsrfRejected()

    def sign_in(self, visit: Visit, email: str, password: str, address: str | None) -> User:
        """Check a login attempt; on success the visit carries a new signed-in session."""
        wait = self.throttle.retry_after(email, address)
        if wait:
            minutes = max(1, -(-wait // 60))
            raise TooManyRequests(
                "too_many_attempts",
                f"Too many failed sign-ins. Try again in {minutes} minute"
                + ("s." if minutes > 1 else "."),
                headers={"Retry-After": str(wait)},
            )
        user = self.users.authenticate(email, password)
        if user is None:
            self.throttle.failed(email, address)
            raise Unauthorized("wrong_credentials", WRONG_CREDENTIALS)
        self.throttle.succeeded(email)
        visit.session = self.sessions.signed_in(user.id, user.session_version)
        visit.user, visit.issue = user, True
        return user

    def sign_out(self, visit: Visit) -> None:
        """Revoke every session of the user (server-side) and forget this one."""
        if visit.user is not None:
            self.users.revoke_sessions(visit.user.id)
        visit.session, visit.user, visit.issue = self.sessions.anonymous(), None, True

    def finish(self, response: Response, visit: Visit) -> Response:
        """Add the page headers and, when the session changed, its cookie."""
        response.headers.update(PAGE_HEADERS)
        if visit.issue:
            response.set_cookie(
                COOKIE,
                self.sessions.dumps(visit.session),
                max_age=int(self.sessions.lifetime.total_seconds()),
                path=COOKIE_PATH,
                secure=self.secure_cookies,
                httponly=True,
                samesite="lax",
            )
        return response

    # -- pages ---------------------------------------------------------------------------------
    def page(
        self,
        visit: Visit,
        template: str,
        status: int = 200,
        active: str = "",
        headers: dict[str, str] | None = None,
        **context: Any,
    ) -> Response:
        html = self.env.get_template(template).render(
            user=visit.user, csrf=visit.csrf, csrf_field=CSRF_FIELD, active=active, **context
        )
        return self.finish(HTMLResponse(html, status_code=status, headers=headers), visit)

    # -- profiles --------------------------------------------------------------------------------
    def find_profile(self, query: str, id_type: str = "any") -> str:
        """The profile address (``type:value``) for what was typed: an explicit ``type:value``,
        or with ``any`` an email (if it has an @), then a userId, then an anonymousId."""
        text = query.strip()
        if not text:
            raise TidingsError("empty_query", "type an email, userId or anonymousId", "q")
        if id_type != "any":
            candidates = [f"{id_type}:{text}"]
        else:
            prefix, sep, _ = text.partition(":")
            candidates = [text] if sep and prefix in self.profiles.id_types() else []
            if "@" in text:
                candidates.append(f"{EMAIL}:{text}")
            candidates += [f"{USER_ID}:{text}", f"{ANONYMOUS_ID}:{text}"]
        for ref in candidates:
            try:
                identifier = self.profiles.parse(ref)
                self.profiles.resolve(ref)
            except NotFound:
                continue
            return f"{identifier.type}:{identifier.value}"
        raise NotFound("profile_not_found", f"no profile holds {text!r}", "q")
