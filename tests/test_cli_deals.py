"""A deal manager at the terminal: `pap login`, then `pap deals create | decide | watch | confirm | cancel`
against the running platform (the CLI is a thin client of the API)."""

from __future__ import annotations

import asyncio
import os
import re
import sys
import uuid

import httpx
from typer.testing import CliRunner, Result

from pap.cli import app as cli_app
from pap.db import SessionFactory
from services.identity.permissions import Role
from services.identity.tokens import KeyRing
from tests.deal_support import TokenFor, parties
from tests.factories import PASSWORD, next_totp, register_and_login
from tests.support import eventually


def pap(api: httpx.AsyncClient, *args: str, token: str | None = None) -> Result:
    env = {"PAP_TOKEN": token} if token else {}
    return CliRunner().invoke(cli_app, [*args, "--api", str(api.base_url)], env=env)


async def test_a_deal_manager_signs_in_starts_a_deal_follows_it_and_cancels_it(
    api: httpx.AsyncClient, sessions: SessionFactory, token_for: TokenFor, keyring: KeyRing
) -> None:
    manager = await register_and_login(api, roles=["deal_manager"], admin_headers=token_for(uuid.uuid4(), Role.ADMIN))
    assert manager.totp_secret is not None
    signed_in = pap(api, "login", manager.email, "--password", PASSWORD, "--otp", next_totp(manager.totp_secret))
    assert signed_in.exit_code == 0, signed_in.output
    token = signed_in.stdout.strip()
    assert keyring.verify(token).mfa is True

    p = await parties(api, sessions, token_for)
    created = pap(
        api,
        *("deals", "create", "--security", str(p.security_id), "--seller", str(p.seller.id)),
        *("--buyer", str(p.buyer.id), "--quantity", "10", "--price", "12.50"),
        token=token,
    )
    assert created.exit_code == 0, created.output
    found = re.search(r"deal ([0-9a-f-]{36})", created.stdout)
    assert found is not None, created.stdout
    deal_id = found.group(1)

    async def stage() -> str:
        return str((await api.get(f"/v1/deals/{deal_id}", headers=p.manager)).json()["stage"])

    await eventually(stage, lambda s: s == "awaiting_issuer", what="the deal to await the issuer")
    early = pap(api, "deals", "confirm", deal_id, token=token)
    assert early.exit_code == 1 and "409" in early.output  # nothing to confirm yet: the API's problem, printed
    decided = pap(api, "deals", "decide", deal_id, "waive", "--reason", "no ROFR", token=token)
    assert decided.exit_code == 0 and "issuer decision waive" in decided.stdout, decided.output

    watching = await asyncio.create_subprocess_exec(
        *(sys.executable, "-m", "pap", "deals", "watch", deal_id, "--timeout", "120", "--api", str(api.base_url)),
        env={**os.environ, "PAP_TOKEN": token},
        stdout=asyncio.subprocess.PIPE,
    )
    assert watching.stdout is not None
    seen = [await _line(watching.stdout)]
    while "awaiting_issuer" not in seen[-1]:  # the timeline so far is printed: watch now long-polls for more
        seen.append(await _line(watching.stdout))
    cancelled = pap(api, "deals", "cancel", deal_id, "--reason", "buyer withdrew", token=token)
    assert cancelled.exit_code == 0 and "cancelled" in cancelled.stdout, cancelled.output
    rest, _ = await asyncio.wait_for(watching.communicate(), timeout=60)
    assert watching.returncode == 0
    followed = rest.decode().splitlines()
    assert any("cancelled" in line and "buyer withdrew" in line for line in followed), followed
    assert followed[-1] == f"deal {deal_id} cancelled"


async def _line(stream: asyncio.StreamReader) -> str:
    line = await asyncio.wait_for(stream.readline(), timeout=60)
    assert line, "watch ended early"
    return line.decode()
