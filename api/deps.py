"""FastAPI dependencies shared by every router."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated

from fastapi import Depends, Request
from redis.asyncio import Redis
from sqlmodel.ext.asyncio.session import AsyncSession
from temporalio.client import Client

from api.deal_changes import DealChanges
from api.state import AppState
from pap.db import SessionFactory, transaction
from pap.settings import Settings
from pap.storage import ObjectStore


async def get_state(request: Request) -> AppState:
    state: AppState = request.app.state.pap
    return state


StateDep = Annotated[AppState, Depends(get_state)]


async def get_settings_dep(state: StateDep) -> Settings:
    return state.resources.settings


async def get_sessions(state: StateDep) -> SessionFactory:
    return state.resources.sessions


async def get_session(
    sessions: Annotated[SessionFactory, Depends(get_sessions)],
) -> AsyncIterator[AsyncSession]:
    """A session in one transaction, committed when the endpoint returns without error.

    Function-scoped (see `SessionDep`): the commit happens before the response is sent, so a
    client that got a 2xx can rely on it (a request-scoped dependency would commit afterwards).
    """
    async with transaction(sessions) as session:
        yield session


async def get_temporal(state: StateDep) -> Client:
    return await state.temporal()


async def get_redis(state: StateDep) -> Redis:
    return state.resources.redis


async def get_store(state: StateDep) -> ObjectStore:
    return state.resources.store


async def get_deal_changes(state: StateDep) -> DealChanges:
    return state.deal_changes


SettingsDep = Annotated[Settings, Depends(get_settings_dep)]
SessionsDep = Annotated[SessionFactory, Depends(get_sessions)]
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
TemporalDep = Annotated[Client, Depends(get_temporal)]
RedisDep = Annotated[Redis, Depends(get_redis)]
StoreDep = Annotated[ObjectStore, Depends(get_store)]
DealChangesDep = Annotated[DealChanges, Depends(get_deal_changes)]
