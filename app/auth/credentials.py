"""Users and tokens: create, check, revoke. Secrets are stored only as hashes."""

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

from flask import current_app
from sqlalchemy import Row, delete, select, update
from werkzeug.security import check_password_hash, generate_password_hash

from app.extensions import db
from app.ingest.records import InvalidLine, service_name
from app.models import ROLES, SCOPES, ApiToken, User, UserSession, row_by_id

TOKEN_PREFIX = "ld_"  # noqa: S105 (a marker that makes tokens recognisable, not a secret)
MIN_PASSWORD_CHARS = 12
# How stale a token's last_used_at, or a session's seen_at, may be.
LAST_USED_PRECISION = timedelta(minutes=1)
# Checked against when the user does not exist, so a wrong name takes as long as a
# wrong password and does not reveal which names exist.
_DUMMY_HASH = generate_password_hash("not a real password")


class CredentialError(ValueError):
    """A user or token that cannot be created as asked."""


class BeyondThePin(CredentialError):
    """A token pinned to a service asked for a token that could send for others."""


def _check_password(password: str | None) -> None:
    """Refuse a password too short to keep anyone out (CredentialError)."""
    if len(password or "") < MIN_PASSWORD_CHARS:
        raise CredentialError(f"password must be at least {MIN_PASSWORD_CHARS} characters")


def create_user(username: str, password: str, role: str = "viewer") -> User:
    """Store a user with a slow salted password hash."""
    username = username.strip() if isinstance(username, str) else ""
    if not username or len(username) > 100 or not username.isprintable():
        raise CredentialError("username must be 1 to 100 printable characters")
    if role not in ROLES:
        raise CredentialError(f"role must be one of {', '.join(ROLES)}")
    _check_password(password)
    if db.session.scalars(select(User).where(User.username == username)).first():
        raise CredentialError(f"user {username!r} exists already")
    user = User(username=username, password_hash=generate_password_hash(password), role=role)
    db.session.add(user)
    db.session.commit()
    return user


def set_password(username: str, password: str) -> User:
    """Give a user a new password; every session of the user ends, and browsers that
    signed in with the old one are no longer known devices (their cookie carries its
    password_tag)."""
    _check_password(password)
    user = db.session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        raise CredentialError(f"no user named {username!r}")
    user.password_hash = generate_password_hash(password)
    db.session.execute(delete(UserSession).where(UserSession.user_id == user.id))
    db.session.commit()
    return user


def password_tag(user: User) -> str:
    """A short digest of the user's password hash: a new password voids the sessions and
    cookies that carry the old one's."""
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:16]


def start_session(user: User) -> str:
    """Record a browser signing in as the user; return the id its session cookie carries.

    The user's sessions idle for longer than a session lasts are deleted here: each
    sign-in sweeps what earlier ones left.
    """
    plain = secrets.token_urlsafe(32)
    now = datetime.now(UTC)
    db.session.execute(delete(UserSession).where(
        UserSession.user_id == user.id,
        UserSession.seen_at < now - current_app.permanent_session_lifetime))
    db.session.add(UserSession(id_hash=_digest(plain), user_id=user.id, created_at=now,
                               seen_at=now))
    db.session.commit()
    return plain


def end_session(session_id) -> None:
    """Sign a session out for good: a copy of its cookie no longer signs anyone in."""
    if isinstance(session_id, str):
        db.session.execute(delete(UserSession).where(UserSession.id_hash == _digest(session_id)))
        db.session.commit()


def session_user(user_id, session_id) -> User | None:
    """The user a session cookie names, if that session has not ended (signed out, a new
    password, the user deleted, or idle for longer than a session lasts)."""
    if not isinstance(user_id, int) or not isinstance(session_id, str):
        return None
    found = db.session.execute(
        select(User, UserSession.seen_at).join(UserSession, UserSession.user_id == User.id)
        .where(UserSession.id_hash == _digest(session_id), User.id == user_id)).first()
    now = datetime.now(UTC)
    if found is None or found.seen_at < now - current_app.permanent_session_lifetime:
        return None
    if now - found.seen_at >= LAST_USED_PRECISION:
        db.session.execute(update(UserSession).where(
            UserSession.id_hash == _digest(session_id)).values(seen_at=now))
        db.session.commit()
    return found.User


def authenticate(username: str, password: str) -> User | None:
    """The user with this name and password, or None."""
    user = db.session.scalars(select(User).where(User.username == username)).first()
    if user is None:
        check_password_hash(_DUMMY_HASH, password)
        return None
    if not check_password_hash(user.password_hash, password):
        return None
    user.last_login_at = datetime.now(UTC)
    db.session.commit()
    return user


def _digest(token: str) -> str:
    """The stored form of a token."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(name: str, scope: str, service: str | None = None,
                 asker_pin: str | None = None) -> tuple[ApiToken, str]:
    """Make a token; the plain value is returned here once and never stored. `asker_pin`
    is the service the token asking for it is pinned to, if it is."""
    name = name.strip() if isinstance(name, str) else ""
    if not name or len(name) > 100 or not name.isprintable():
        raise CredentialError("name must be 1 to 100 printable characters")
    if service:
        try:
            service = service_name(service)
        except InvalidLine as error:
            raise CredentialError(str(error)) from None
    if not isinstance(scope, str) or scope not in SCOPES:
        raise CredentialError(f"scope must be one of {', '.join(SCOPES)}")
    if service and scope == "read":
        # A pin limits sending only, which a read token cannot do: it would still read all.
        raise CredentialError("service pins what a token may send; a read token sends"
                              " nothing, so leave it empty")
    if asker_pin is not None and scope != "read" and service != asker_pin:
        # A token that could send for another service would undo the asker's pin.
        raise BeyondThePin(f"this token only sends logs for service {asker_pin!r}: the"
                           " tokens it makes that can send must be pinned to it too"
                           f" (service {asker_pin!r})")
    plain = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken(name=name, token_hash=_digest(plain), prefix=plain[:10], scope=scope,
                     service=(service or None))
    db.session.add(token)
    db.session.commit()
    return token, plain


def find_token(plain: str) -> Row | None:
    """The live token matching a presented value, noting that it was used: its id, name,
    scope and pinned service as a plain row (every request reads one; no ORM object)."""
    digest = _digest(plain)
    token = db.session.execute(select(
        ApiToken.id, ApiToken.name, ApiToken.scope, ApiToken.service, ApiToken.token_hash,
        ApiToken.last_used_at).where(
        ApiToken.token_hash == digest, ApiToken.revoked_at.is_(None))).first()
    if token is None or not hmac.compare_digest(token.token_hash, digest):
        return None
    now = datetime.now(UTC)
    # To the minute is enough to tell which tokens are in use; writing on every request
    # would add a commit (a WAL flush) to each one, ingest batches included.
    if token.last_used_at is None or now - token.last_used_at >= LAST_USED_PRECISION:
        db.session.execute(update(ApiToken).where(ApiToken.id == token.id)
                           .values(last_used_at=now))
        db.session.commit()
    return token


def revoke_token(token_id: int) -> bool:
    """Revoke a token; False if there is no such live token."""
    if row_by_id(ApiToken, token_id) is None:
        return False
    done = db.session.execute(
        update(ApiToken).where(ApiToken.id == token_id, ApiToken.revoked_at.is_(None))
        .values(revoked_at=datetime.now(UTC)).returning(ApiToken.id)).scalar()
    db.session.commit()
    return done is not None


def list_tokens() -> list[ApiToken]:
    """Every token, newest first."""
    return list(db.session.scalars(select(ApiToken).order_by(ApiToken.id.desc())))


def token_dict(token: ApiToken) -> dict:
    """A token as the API and pages show it (never its value)."""
    return {
        "id": token.id, "name": token.name, "prefix": token.prefix, "scope": token.scope,
        "service": token.service, "created_at": token.created_at.isoformat(),
        "last_used_at": token.last_used_at.isoformat() if token.last_used_at else None,
        "revoked_at": token.revoked_at.isoformat() if token.revoked_at else None,
    }
