"""Object storage behind one interface: a local folder (embedded) or any S3 API (MinIO, AWS, moto).

The minio client is synchronous, so its calls run in a worker thread.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Protocol

from minio import Minio
from minio.error import S3Error

from pap.settings import Settings


class ObjectNotFound(KeyError):
    """No object is stored under that key."""


class ObjectStore(Protocol):
    async def put(self, key: str, data: bytes, content_type: str) -> None: ...
    async def get(self, key: str) -> bytes: ...
    async def check(self) -> None: ...


class LocalObjectStore:
    """Objects as files under one folder; keys are relative paths."""

    def __init__(self, root: Path) -> None:
        self.root = root.resolve()

    def _path(self, key: str) -> Path:
        path = (self.root / key).resolve()
        if not path.is_relative_to(self.root):
            raise ValueError(f"object key escapes the store: {key!r}")
        return path

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(path.suffix + ".tmp")
        await asyncio.to_thread(tmp.write_bytes, data)
        tmp.replace(path)

    async def get(self, key: str) -> bytes:
        path = self._path(key)
        if not path.is_file():
            raise ObjectNotFound(key)
        return await asyncio.to_thread(path.read_bytes)

    async def check(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        if not self.root.is_dir():
            raise RuntimeError(f"{self.root} is not a folder")


class S3ObjectStore:
    """Objects in an S3 bucket, created on first use."""

    def __init__(self, client: Minio, bucket: str) -> None:
        self.client = client
        self.bucket = bucket
        self._bucket_ready = False

    async def _ensure_bucket(self) -> None:
        if self._bucket_ready:
            return
        exists = await asyncio.to_thread(self.client.bucket_exists, self.bucket)
        if not exists:
            try:
                await asyncio.to_thread(self.client.make_bucket, self.bucket)
            except S3Error as error:
                if error.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        self._bucket_ready = True

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await self._ensure_bucket()
        await asyncio.to_thread(
            self.client.put_object,
            self.bucket,
            key,
            io.BytesIO(data),
            len(data),
            content_type,
        )

    async def get(self, key: str) -> bytes:
        await self._ensure_bucket()
        try:
            response = await asyncio.to_thread(self.client.get_object, self.bucket, key)
        except S3Error as error:
            if error.code == "NoSuchKey":
                raise ObjectNotFound(key) from error
            raise
        try:
            return await asyncio.to_thread(response.read)
        finally:
            response.close()
            response.release_conn()

    async def check(self) -> None:
        await self._ensure_bucket()


def create_object_store(settings: Settings) -> ObjectStore:
    if settings.s3_endpoint:
        client = Minio(
            settings.s3_endpoint,
            access_key=settings.s3_access_key,
            secret_key=settings.s3_secret_key.get_secret_value(),
            secure=settings.s3_secure,
        )
        return S3ObjectStore(client, settings.s3_bucket)
    return LocalObjectStore(settings.state_dir / "objects")
