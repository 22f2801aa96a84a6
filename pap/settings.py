"""Platform settings, read from `PAP_*` environment variables and `.env`.

Every address can point at an existing server; when left unset, `pap up`
fills it with the embedded component it starts.
"""

from __future__ import annotations

import json
from enum import StrEnum
from functools import lru_cache
from pathlib import Path
from typing import Annotated
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

Port = Annotated[int, Field(ge=1, le=65535)]


class Environment(StrEnum):
    DEV = "dev"
    TEST = "test"
    PRODUCTION = "production"


class Settings(BaseSettings):
    """All configuration of every process of the platform."""

    model_config = SettingsConfigDict(env_prefix="PAP_", env_file=".env", env_file_encoding="utf-8", extra="ignore")

    env: Environment = Environment.DEV
    state_dir: Path = Path(".pap")
    log_format: str = Field(default="auto", pattern="^(auto|json|console)$")
    log_level: str = Field(default="INFO", pattern="^(DEBUG|INFO|WARNING|ERROR)$")

    # Component addresses (None = embedded, started by `pap up`).
    database_url: str | None = None
    temporal_address: str | None = None
    temporal_namespace: str = "default"
    kafka_bootstrap: str | None = None
    kafka_idempotent_producer: bool = False
    redis_url: str | None = None
    s3_endpoint: str | None = None
    s3_access_key: str = "minioadmin"
    s3_secret_key: SecretStr = SecretStr("minioadmin")
    s3_bucket: str = "pap-documents"
    s3_secure: bool = False
    smtp_host: str = "127.0.0.1"
    smtp_port: Port = 1025
    smtp_sender: str = "Private Assets Platform <no-reply@pap.local>"
    sms_provider_url: str | None = None
    """A hosted SMS API's base URL (POST /messages); outside production, unset means our API's sandbox."""
    otlp_endpoint: str | None = None

    # Ports used by `pap up` for what it starts.
    api_host: str = "127.0.0.1"
    api_port: Port = 8000
    api_workers: int | None = None
    """uvicorn worker processes for `pap api` (unset: 1; `pap up` defaults to 2 so the API uses both cores)."""
    forwarded_allow_ips: str = "127.0.0.1"
    """Proxies whose X-Forwarded-For names the client (comma-separated addresses or CIDRs): behind an
    ingress, its addresses, or every sign-in shares one throttle bucket under the ingress's address."""
    temporal_port: Port = 7233
    temporal_ui_port: Port = 8233
    kafka_port: Port = 9092
    postgres_port: Port = 15432
    redis_port: Port = 16379
    metrics_port: Port = 9464

    # Temporal worker tuning.
    task_queue: str = "pap-main"
    worker_max_concurrent_activities: int = Field(default=100, ge=1)
    worker_max_concurrent_workflow_tasks: int = Field(default=100, ge=1)
    worker_sticky_timeout_seconds: float = Field(default=5.0, gt=0)
    """How long a workflow's next task waits for the worker that has it cached before any worker takes it:
    what a crashed worker costs each of its workflows (the SDK's default is 10 s)."""

    # Outbox relay and consumers.
    relay_batch_size: int = Field(default=500, ge=1)
    relay_poll_interval_seconds: float = Field(default=0.2, gt=0)
    consumer_max_attempts: int = Field(default=5, ge=1)
    """Attempts at an event whose handler fails for a reason of its own, before it is dead-lettered."""
    consumer_max_backoff_seconds: float = Field(default=30.0, gt=0)
    """The longest wait between retries; an outage (database, SMTP, Temporal down) is retried until it ends."""
    consumer_group_prefix: str = "pap"
    consumer_session_timeout_ms: int = Field(default=10_000, ge=1_000)
    """How long the broker waits for a silent consumer before handing its partitions on. Tansu holds every
    group join for half of it, so the tests' embedded broker uses a shorter one (Kafka's minimum is 6 s)."""
    workflow_backstop_delay_seconds: float = Field(default=60.0, ge=0)
    """How far the workflow backstops (order-workflows, deal-workflows, deal-signals) run behind their events."""

    # Housekeeping (run by the consumers process): rows no reader needs any more are deleted in batches.
    housekeeping_interval_seconds: float = Field(default=600.0, gt=0)
    housekeeping_batch_size: int = Field(default=5000, ge=1)
    outbox_retention_days: float = Field(default=7.0, gt=0)
    """Published outbox rows; the topics keep events as long (parked, unpublished rows stay)."""
    processed_event_retention_days: float = Field(default=35.0, gt=0)
    """De-duplication rows: past the dead-letter topic's 30 days, so a replay still finds them."""
    registrations_per_address_per_hour: int = Field(default=20, ge=1)
    """Sign-ups (API and app) one client address may attempt per hour."""
    idempotency_key_retention_days: float = Field(default=1.0, gt=0)
    """Stored first responses to `Idempotency-Key` POSTs: a client retries within minutes, not days."""
    password_reset_retention_days: float = Field(default=30.0, gt=0)
    """Password resets, counted from their link's expiry (the audit trail keeps the requests)."""
    pricing_quote_retention_days: float = Field(default=365.0, gt=0)
    """Book quotes: the reference price looks 365 days back, so every `as_of` in that window reads the same
    inputs (each security's last quote before the cut stays too: it is still its book)."""

    # Secrets and bootstrap.
    payments_webhook_secret: SecretStr = SecretStr("dev-payments-webhook-secret")
    kyc_webhook_secret: SecretStr = SecretStr("dev-kyc-webhook-secret")
    kyc_provider_url: str | None = None
    """The KYC provider's API (`POST {url}/checks`); unset: the sandbox this API serves (not in production)."""
    public_api_url: str | None = None
    """How the outside world (a provider's webhook) reaches this API; unset: http://api_host:api_port."""
    jwt_private_key_file: Path | None = None
    bootstrap_admin_email: str | None = None
    bootstrap_admin_password: SecretStr | None = None

    @property
    def public_url(self) -> str:
        """Where the outside world (an emailed link, a provider's webhook) reaches this API; the app is under /app."""
        host = "127.0.0.1" if self.api_host in ("0.0.0.0", "::") else self.api_host  # noqa: S104 - listen-all
        return (self.public_api_url or f"http://{host}:{self.api_port}").rstrip("/")

    @field_validator("database_url")
    @classmethod
    def _async_driver(cls, value: str | None) -> str | None:
        if value is None:
            return None
        if value.startswith(("postgres://", "postgresql://")):
            return "postgresql+asyncpg://" + value.split("://", 1)[1]
        if not value.startswith("postgresql+asyncpg://"):
            raise ValueError("must be a PostgreSQL URL (postgresql://user:pass@host:port/db)")
        return value

    @field_validator("kafka_bootstrap", "temporal_address")
    @classmethod
    def _host_port(cls, value: str | None) -> str | None:
        if value is None:
            return None
        for part in value.split(","):
            host, sep, port = part.strip().rpartition(":")
            if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
                raise ValueError(f"expected host:port, got {part!r}")
        return value

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, value: str | None) -> str | None:
        if value is not None and not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @model_validator(mode="after")
    def _production_needs_real_secrets(self) -> Settings:
        if self.env is Environment.PRODUCTION:
            if self.payments_webhook_secret.get_secret_value().startswith("dev-"):
                raise ValueError("PAP_PAYMENTS_WEBHOOK_SECRET must be set in production")
            if self.kyc_webhook_secret.get_secret_value().startswith("dev-"):
                raise ValueError("PAP_KYC_WEBHOOK_SECRET must be set in production")
            if self.kyc_provider_url is None or self.public_api_url is None:
                raise ValueError("PAP_KYC_PROVIDER_URL and PAP_PUBLIC_API_URL must be set in production")
            if self.jwt_private_key_file is None:
                raise ValueError("PAP_JWT_PRIVATE_KEY_FILE must be set in production")
            if self.sms_provider_url is None:  # the sandbox SMS endpoint is not served in production
                raise ValueError("PAP_SMS_PROVIDER_URL must be set in production")
        return self

    @property
    def is_production(self) -> bool:
        return self.env is Environment.PRODUCTION

    def require(self, name: str) -> str:
        """The address of a component, or a clear error when nothing provides it."""
        value = getattr(self, name)
        if not value:
            raise RuntimeError(
                f"PAP_{name.upper()} is not set: run `pap up` (which starts the embedded "
                f"stack) or point PAP_{name.upper()} at a running server"
            )
        return str(value)


@lru_cache
def get_settings() -> Settings:
    """The process-wide settings; `pap up` passes addresses to children through the environment."""
    return Settings()


def attach_running_stack(settings: Settings) -> Settings:
    """Fill unset addresses from the `stack.json` a running `pap up` wrote (for commands run beside it)."""
    path = settings.state_dir / "stack.json"
    if not path.is_file():
        return settings
    stack: dict[str, str] = json.loads(path.read_text())
    update: dict[str, object] = {}
    for field, key in (
        ("database_url", "database"),
        ("temporal_address", "temporal"),
        ("kafka_bootstrap", "kafka"),
        ("redis_url", "redis"),
    ):
        if getattr(settings, field) is None and stack.get(key):
            update[field] = stack[key]
    if "api" in stack:
        api = urlsplit(stack["api"])
        update |= {"api_host": api.hostname or settings.api_host, "api_port": api.port or settings.api_port}
    if "smtp" in stack:
        host, _, port = stack["smtp"].rpartition(":")
        update |= {"smtp_host": host, "smtp_port": int(port)}
    return settings.model_copy(update=update)
