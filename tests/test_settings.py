"""Settings are validated at start-up with errors that say what to fix."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from pap.settings import Settings, attach_running_stack


def make(**values: object) -> Settings:
    return Settings(_env_file=None, **values)  # type: ignore[arg-type]


def test_postgres_url_gets_the_async_driver() -> None:
    assert make(database_url="postgresql://u:p@db:5432/pap").database_url == "postgresql+asyncpg://u:p@db:5432/pap"


@pytest.mark.parametrize(
    ("field", "value", "fragment"),
    [
        ("database_url", "mysql://x", "PostgreSQL URL"),
        ("kafka_bootstrap", "localhost", "host:port"),
        ("temporal_address", "temporal:99999", "host:port"),
        ("redis_url", "http://redis", "redis://"),
        ("api_port", 70000, "less than or equal"),
    ],
)
def test_bad_values_are_rejected_with_a_clear_message(field: str, value: object, fragment: str) -> None:
    with pytest.raises(ValidationError) as error:
        make(**{field: value})
    assert fragment in str(error.value)


def test_production_refuses_development_secrets() -> None:
    with pytest.raises(ValidationError, match="PAP_PAYMENTS_WEBHOOK_SECRET"):
        make(env="production")
    real = {"payments_webhook_secret": "s3cret-payments", "jwt_private_key_file": "/keys/jwt.pem"}
    with pytest.raises(ValidationError, match="PAP_KYC_WEBHOOK_SECRET"):  # anyone could sign their own KYC approval
        make(env="production", **real)
    with pytest.raises(ValidationError, match="PAP_KYC_PROVIDER_URL"):  # the sandbox provider is not served there
        make(env="production", kyc_webhook_secret="s3cret-kyc", **real)
    kyc = {"kyc_webhook_secret": "s3cret-kyc", "kyc_provider_url": "https://kyc.example.com/v1"}
    with pytest.raises(ValidationError, match="PAP_SMS_PROVIDER_URL"):  # nor is the sandbox SMS endpoint
        make(env="production", public_api_url="https://pap.example.com", **kyc, **real)
    configured = make(
        env="production",
        kyc_webhook_secret="s3cret-kyc",
        kyc_provider_url="https://kyc.example.com/v1",
        public_api_url="https://pap.example.com",
        sms_provider_url="https://sms.example.com/v1",
        **real,
    )
    assert configured.is_production


def test_environment_variables_use_the_pap_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PAP_KAFKA_BOOTSTRAP", "broker:9093")
    assert Settings(_env_file=None).kafka_bootstrap == "broker:9093"


def test_missing_address_explains_how_to_get_one() -> None:
    with pytest.raises(RuntimeError, match="pap up"):
        make().require("database_url")


def test_cli_reports_a_bad_setting_in_one_line_and_exits_2() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "pap", "migrate"],
        env={"PAP_KAFKA_BOOTSTRAP": "no-port", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 2
    assert "PAP_KAFKA_BOOTSTRAP" in result.stderr and "host:port" in result.stderr
    assert "Traceback" not in result.stderr


def test_commands_beside_a_running_stack_take_its_addresses(tmp_path: Path) -> None:
    (tmp_path / "stack.json").write_text(
        '{"api": "http://127.0.0.1:8100", "temporal": "127.0.0.1:7300", "kafka": "127.0.0.1:9100",'
        ' "redis": "redis://127.0.0.1:16400/0", "database": "postgresql+asyncpg://postgres@127.0.0.1:15500/pap",'
        ' "smtp": "127.0.0.1:1100"}'
    )
    attached = attach_running_stack(make(state_dir=tmp_path, kafka_bootstrap="broker:9093"))
    assert attached.database_url == "postgresql+asyncpg://postgres@127.0.0.1:15500/pap"
    assert attached.temporal_address == "127.0.0.1:7300"
    assert attached.kafka_bootstrap == "broker:9093"  # what the environment sets wins
    assert (attached.api_port, attached.smtp_port) == (8100, 1100)
    assert attach_running_stack(make(state_dir=tmp_path / "none")).database_url is None
