"""People who log in, and API tokens for scripts and shippers."""

from datetime import datetime

from sqlalchemy import CheckConstraint, DateTime, ForeignKey, Integer, Text, text
from sqlalchemy.orm import Mapped, mapped_column

from app.extensions import db

ROLES = ("admin", "viewer")
SCOPES = ("ingest", "read", "admin")


class User(db.Model):
    """A person: admins may change alert configs and tokens, viewers only look."""

    __tablename__ = "users"
    __table_args__ = ({"schema": "logs"},)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    username: Mapped[str] = mapped_column(Text, unique=True)
    # scrypt, salted (werkzeug.security): slow on purpose.
    password_hash: Mapped[str] = mapped_column(Text)
    role: Mapped[str] = mapped_column(Text, server_default=text("'viewer'"))
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    last_login_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))


class UserSession(db.Model):
    """A browser signed in as a user: its session cookie names it. Signing out, a new
    password or deleting the user ends it, and with it every copy of the cookie."""

    __tablename__ = "user_sessions"
    __table_args__ = ({"schema": "logs"},)

    # SHA-256 of the random id the cookie carries, as for tokens.
    id_hash: Mapped[str] = mapped_column(Text, primary_key=True)
    user_id: Mapped[int] = mapped_column(
        Integer, ForeignKey("logs.users.id", ondelete="CASCADE"), index=True)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    # To the minute: a session idle for its whole lifetime has ended.
    seen_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )


class ApiToken(db.Model):
    """A bearer token: stored only as a hash; may be pinned to one service (ingest)."""

    __tablename__ = "api_tokens"
    __table_args__ = (
        # A pin limits what a token sends; a read token sends nothing.
        CheckConstraint("scope <> 'read' OR service IS NULL", name="api_tokens_read_unpinned"),
        {"schema": "logs"},
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(Text)
    # SHA-256 of the token: tokens are long and random, so a fast hash is enough.
    token_hash: Mapped[str] = mapped_column(Text, unique=True)
    # The first characters, so people can tell their tokens apart.
    prefix: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    service: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(
        DateTime(timezone=True), server_default=text("now()")
    )
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
    revoked_at: Mapped[datetime | None] = mapped_column(DateTime(timezone=True))
