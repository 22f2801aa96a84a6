"""Identity tables (users, sessions, refresh tokens, recovery codes) and the API schemas of the auth endpoints."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy import BigInteger, Boolean, Column, DateTime, ForeignKey, String, UniqueConstraint
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Field as SQLField
from sqlmodel import SQLModel

from models.base import OneLine, optional_timestamp_column, timestamp_column, uuid_pk

RoleLiteral = Literal["investor", "issuer", "deal_manager", "compliance", "admin"]


class User(SQLModel, table=True):
    """A person who signs in; roles are stored with the user and copied into each access token."""

    __tablename__ = "user"
    __table_args__ = {"schema": "identity"}

    id: uuid.UUID = uuid_pk()
    email: str = SQLField(sa_column=Column(String(320), nullable=False, unique=True))
    full_name: str = SQLField(sa_column=Column(String(200), nullable=False))
    password_hash: str = SQLField(sa_column=Column(String(256), nullable=False))
    roles: list[str] = SQLField(sa_column=Column(ARRAY(String(32)), nullable=False))
    company_id: uuid.UUID | None = SQLField(default=None, nullable=True)
    mfa_enabled: bool = SQLField(default=False, sa_column=Column(Boolean, nullable=False, server_default="false"))
    totp_secret: str | None = SQLField(default=None, sa_column=Column(String(64), nullable=True))
    totp_last_step: int | None = SQLField(default=None, sa_column=Column(BigInteger, nullable=True))
    created_at: datetime = timestamp_column()
    mfa_enabled_at: datetime | None = optional_timestamp_column()


class AuthSession(SQLModel, table=True):
    """One sign-in: the family of refresh tokens rotated from it; revoking it ends them all."""

    __tablename__ = "session"
    __table_args__ = {"schema": "identity"}

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = SQLField(sa_column=Column(ForeignKey("identity.user.id"), nullable=False, index=True))
    mfa: bool = SQLField(default=False, sa_column=Column(Boolean, nullable=False))
    user_agent: str | None = SQLField(default=None, sa_column=Column(String(512), nullable=True))
    ip: str | None = SQLField(default=None, sa_column=Column(String(64), nullable=True))
    created_at: datetime = timestamp_column()
    last_seen_at: datetime = timestamp_column()
    revoked_at: datetime | None = optional_timestamp_column()
    revoked_reason: str | None = SQLField(default=None, sa_column=Column(String(64), nullable=True))


class RefreshToken(SQLModel, table=True):
    """An opaque refresh token, stored only as its SHA-256; `rotated_at` marks it spent."""

    __tablename__ = "refresh_token"
    __table_args__ = {"schema": "identity"}

    id: uuid.UUID = uuid_pk()
    session_id: uuid.UUID = SQLField(sa_column=Column(ForeignKey("identity.session.id"), nullable=False, index=True))
    token_hash: str = SQLField(sa_column=Column(String(64), nullable=False, unique=True))
    created_at: datetime = timestamp_column()
    expires_at: datetime = SQLField(sa_column=Column(DateTime(timezone=True), nullable=False))
    rotated_at: datetime | None = optional_timestamp_column()


class RecoveryCode(SQLModel, table=True):
    """A one-time MFA recovery code, stored as its SHA-256 (unique per user: two users may draw the same code)."""

    __tablename__ = "recovery_code"
    __table_args__ = (
        UniqueConstraint("user_id", "code_hash", name="uq_recovery_code_user_id_code_hash"),
        {"schema": "identity"},
    )

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = SQLField(sa_column=Column(ForeignKey("identity.user.id"), nullable=False, index=True))
    code_hash: str = SQLField(sa_column=Column(String(64), nullable=False))
    created_at: datetime = timestamp_column()
    used_at: datetime | None = optional_timestamp_column()


class PasswordReset(SQLModel, table=True):
    """A requested password reset: its emailed link (a token naming this row) works once, until `expires_at`."""

    __tablename__ = "password_reset"
    __table_args__ = {"schema": "identity"}

    id: uuid.UUID = uuid_pk()
    user_id: uuid.UUID = SQLField(sa_column=Column(ForeignKey("identity.user.id"), nullable=False, index=True))
    requested_ip: str | None = SQLField(default=None, sa_column=Column(String(64), nullable=True))
    created_at: datetime = timestamp_column()
    expires_at: datetime = SQLField(sa_column=Column(DateTime(timezone=True), nullable=False))
    used_at: datetime | None = optional_timestamp_column()


# -- API schemas -------------------------------------------------------------------------------------------------


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)
    full_name: OneLine = Field(min_length=1, max_length=200)


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: str = Field(min_length=1, max_length=1024)
    new_password: str = Field(min_length=1, max_length=1024)


class PasswordResetRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=3, max_length=320)


class PasswordResetAccepted(BaseModel):
    detail: str = "If an account uses this email, a reset link is on its way. It works once, for 30 minutes."


class PasswordResetConfirm(BaseModel):
    model_config = ConfigDict(extra="forbid")

    token: str = Field(min_length=1, max_length=4096)
    new_password: str = Field(min_length=1, max_length=1024)


class UserRead(BaseModel):
    id: uuid.UUID
    email: str
    full_name: str
    roles: list[str]
    company_id: uuid.UUID | None = None


class TokenResponse(BaseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class RefreshRequest(BaseModel):
    refresh_token: str = Field(min_length=1, max_length=512)


class SessionRead(BaseModel):
    id: uuid.UUID
    user_agent: str | None
    ip: str | None
    mfa: bool
    created_at: datetime
    last_seen_at: datetime
    current: bool


class SessionList(BaseModel):
    items: list[SessionRead]
    next_cursor: str | None = None


class TotpEnrolment(BaseModel):
    secret: str
    otpauth_uri: str


class TotpVerifyRequest(BaseModel):
    code: str = Field(pattern=r"^[0-9]{6}$")


class TotpVerified(BaseModel):
    """The recovery codes (shown once) and, for convenience, tokens of the current session upgraded to MFA."""

    recovery_codes: list[str]
    access_token: str | None = None
    refresh_token: str | None = None
    token_type: str = "bearer"
    expires_in: int | None = None


class RolesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    roles: list[RoleLiteral] = Field(min_length=1, max_length=5)
    company_id: uuid.UUID | None = None


class MeRead(BaseModel):
    id: uuid.UUID
    email: str
    full_name: str
    roles: list[str]
    company_id: uuid.UUID | None = None
    mfa_enabled: bool
    kyc_status: str
    accreditation_status: str
