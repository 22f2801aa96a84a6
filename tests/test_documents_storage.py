"""Object storage for documents: the local folder and the S3 adapter against a real S3 API (moto server)."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from minio import Minio

from pap.storage import LocalObjectStore, ObjectNotFound, ObjectStore, S3ObjectStore
from tests.support import eventually


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def moto_endpoint(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A moto S3 server as a child process on a free port."""
    port = _free_port()
    log = (tmp_path_factory.mktemp("moto") / "moto.log").open("wb")
    binary = Path(sys.executable).parent / "moto_server"
    process = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)], stdout=log, stderr=log)
    try:
        yield f"127.0.0.1:{port}"
    finally:
        process.terminate()
        process.wait(timeout=10)
        log.close()


@pytest.fixture
async def s3_store(moto_endpoint: str) -> S3ObjectStore:
    async def up() -> bool:
        try:
            async with httpx.AsyncClient() as client:
                await client.get(f"http://{moto_endpoint}/")
            return True
        except httpx.HTTPError:
            return False

    await eventually(up, timeout=20, what="moto server")
    client = Minio(moto_endpoint, access_key="testing", secret_key="testing", secure=False)
    return S3ObjectStore(client, f"pap-docs-{uuid.uuid4().hex[:12]}")


async def _round_trip(store: ObjectStore) -> None:
    data = b"%PDF-1.4 " + uuid.uuid4().bytes * 1000
    key = f"documents/{uuid.uuid4()}/joinder-{uuid.uuid4()}.pdf"
    await store.check()
    await store.put(key, data, "application/pdf")
    got = await store.get(key)
    assert hashlib.sha256(got).hexdigest() == hashlib.sha256(data).hexdigest()
    with pytest.raises(ObjectNotFound):
        await store.get(f"documents/{uuid.uuid4()}/missing.pdf")


async def test_s3_store_keeps_bytes_intact_against_a_real_s3_api(s3_store: S3ObjectStore) -> None:
    await _round_trip(s3_store)


async def test_local_store_keeps_bytes_intact_and_refuses_escaping_keys(tmp_path: Path) -> None:
    store = LocalObjectStore(tmp_path / "objects")
    await _round_trip(store)
    with pytest.raises(ValueError, match="escapes"):
        await store.put("../outside.pdf", b"x", "application/pdf")
