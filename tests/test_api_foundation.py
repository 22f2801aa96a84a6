"""The API skeleton against the running stack: health, metrics, problems, request ids, idempotency."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import httpx
import sqlalchemy
from fastapi import FastAPI
from starlette.types import Message, Receive, Scope, Send

from api.deps import SessionDep, get_sessions
from api.problems import install_problem_handlers
from pap.db import SessionFactory
from services.identity.permissions import Role
from tests.factories import register_and_login


async def test_liveness_and_readiness_report_every_component(api: httpx.AsyncClient) -> None:
    assert (await api.get("/health/live")).status_code == 200
    ready = await api.get("/health/ready")
    assert ready.status_code == 200
    assert ready.json() == {k: "ok" for k in ("postgres", "temporal", "kafka", "redis", "object_store")}


async def test_metrics_are_prometheus_text_with_http_counters(api: httpx.AsyncClient) -> None:
    await api.get("/health/ready")
    response = await api.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    assert 'pap_http_requests_total{method="GET",route="/health/ready",status="200"}' in response.text
    assert "pap_outbox_lag_events" in response.text


async def test_openapi_document_is_served(api: httpx.AsyncClient) -> None:
    document = (await api.get("/openapi.json")).json()
    assert document["info"]["title"] == "Private Assets Platform"
    assert "/v1/_diagnostics/echo" in document["paths"]


async def test_the_diagnostic_is_for_ops_only(api: httpx.AsyncClient, token_for: Callable[..., dict[str, str]]) -> None:
    assert (await api.post("/v1/_diagnostics/echo", json={"message": "x"})).status_code == 401
    investor = token_for(uuid.uuid4(), Role.INVESTOR)
    assert (await api.post("/v1/_diagnostics/echo", json={"message": "x"}, headers=investor)).status_code == 403


async def test_unknown_path_is_a_problem_document(api: httpx.AsyncClient) -> None:
    response = await api.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["type"].endswith("/not-found") and body["status"] == 404 and body["title"]


async def test_malformed_json_is_a_422_problem_not_a_500(ops_api: httpx.AsyncClient, api: httpx.AsyncClient) -> None:
    response = await ops_api.post(
        "/v1/_diagnostics/echo", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert response.status_code == 422
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["errors"]


async def test_validation_errors_name_the_field(ops_api: httpx.AsyncClient, api: httpx.AsyncClient) -> None:
    response = await ops_api.post("/v1/_diagnostics/echo", json={"message": "", "delay_seconds": -1})
    assert response.status_code == 422
    fields = {error["field"] for error in response.json()["errors"]}
    assert fields == {"message", "delay_seconds"}


async def test_request_id_is_echoed_or_generated(ops_api: httpx.AsyncClient, api: httpx.AsyncClient) -> None:
    mine = await api.get("/health/live", headers={"X-Request-ID": "trace-me-123"})
    assert mine.headers["X-Request-ID"] == "trace-me-123"
    generated = await api.get("/health/live")
    assert len(generated.headers["X-Request-ID"]) == 32
    problem = await ops_api.get("/v1/_diagnostics/echo/not-a-uuid", headers={"X-Request-ID": "abc"})
    assert problem.json()["request_id"] == "abc"


async def test_same_idempotency_key_and_body_replays_the_first_response(
    ops_api: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    key = str(uuid.uuid4())
    body = {"message": "pay once"}
    first = await ops_api.post("/v1/_diagnostics/echo", json=body, headers={"Idempotency-Key": key})
    second = await ops_api.post("/v1/_diagnostics/echo", json=body, headers={"Idempotency-Key": key})
    assert first.status_code == second.status_code == 201
    assert second.json()["id"] == first.json()["id"]
    assert second.headers["Idempotent-Replayed"] == "true"


async def test_same_idempotency_key_with_another_body_is_a_conflict(
    ops_api: httpx.AsyncClient, api: httpx.AsyncClient
) -> None:
    key = str(uuid.uuid4())
    await ops_api.post("/v1/_diagnostics/echo", json={"message": "a"}, headers={"Idempotency-Key": key})
    response = await ops_api.post("/v1/_diagnostics/echo", json={"message": "b"}, headers={"Idempotency-Key": key})
    assert response.status_code == 409
    assert response.json()["type"].endswith("/idempotency-key-reused")


async def test_idempotency_keys_are_scoped_per_caller(
    ops_api: httpx.AsyncClient, token_for: Callable[..., dict[str, str]]
) -> None:
    key = str(uuid.uuid4())
    body = {"message": "same key, other caller"}
    first = await ops_api.post("/v1/_diagnostics/echo", json=body, headers={"Idempotency-Key": key})
    other = await ops_api.post(
        "/v1/_diagnostics/echo", json=body, headers={"Idempotency-Key": key, **token_for(uuid.uuid4(), Role.ADMIN)}
    )
    assert other.status_code == 201
    assert other.json()["id"] != first.json()["id"]


async def test_a_session_commits_before_the_response_is_sent(sessions: SessionFactory) -> None:
    """A client that got a 2xx must be able to read what it wrote (e.g. log in right after registering)."""
    events: list[str] = []
    app = FastAPI()
    app.dependency_overrides[get_sessions] = lambda: sessions

    @app.post("/write")
    async def write(session: SessionDep) -> dict[str, str]:
        sqlalchemy.event.listen(session.sync_session, "after_commit", lambda _: events.append("committed"))
        await session.execute(sqlalchemy.text("SELECT 1"))
        return {"ok": "yes"}

    async def recording(scope: Scope, receive: Receive, send: Send) -> None:
        async def record_send(message: Message) -> None:
            if message["type"] == "http.response.start":
                events.append("response started")
            await send(message)

        await app(scope, receive, record_send)

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=recording), base_url="http://t") as client:
        assert (await client.post("/write")).status_code == 200
    assert events == ["committed", "response started"]


async def test_a_transaction_postgres_aborts_for_a_collision_is_a_503_to_send_again(
    api: httpx.AsyncClient, sessions: SessionFactory
) -> None:
    """A deadlock or serialization failure is nobody's bad input: the client is told to retry, not given a 500."""
    user = await register_and_login(api)
    collision = await _serialization_failure(sessions, user.id)
    app = FastAPI()
    install_problem_handlers(app)

    @app.post("/collide")
    async def collide() -> None:
        raise collision

    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as client:
        response = await client.post("/collide")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert response.json()["type"].endswith("/try-again")


async def _serialization_failure(sessions: SessionFactory, user_id: uuid.UUID) -> sqlalchemy.exc.DBAPIError:
    """A real SQLSTATE 40001: a repeatable-read transaction updates a row changed since its snapshot."""
    rename = sqlalchemy.text("UPDATE identity.user SET full_name = :n WHERE id = :u")
    async with sessions() as first, sessions() as second:
        await first.execute(sqlalchemy.text("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ"))
        await first.execute(sqlalchemy.text("SELECT full_name FROM identity.user WHERE id = :u"), {"u": user_id})
        async with second.begin():
            await second.execute(rename, {"n": "Second", "u": user_id})
        try:
            await first.execute(rename, {"n": "First", "u": user_id})
        except sqlalchemy.exc.DBAPIError as error:
            return error
    raise AssertionError("no serialization failure")
