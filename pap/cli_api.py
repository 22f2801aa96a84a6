"""What every `pap` command that talks to the API shares: the address, the token, one call, `pap login`.

The token comes from `--token` or `PAP_TOKEN`; the API address from `--api`,
`PAP_API_URL` or the `api` entry of `.pap/stack.json` written by `pap up`.
"""

from __future__ import annotations

import getpass
import json
from pathlib import Path
from typing import Any

import httpx
import typer
from rich.console import Console

out = Console(width=200)
err = Console(stderr=True)

TokenOption = typer.Option(None, "--token", envvar="PAP_TOKEN", help="Bearer access token (or PAP_TOKEN)")
ApiOption = typer.Option(None, "--api", envvar="PAP_API_URL", help="API base URL (default: .pap/stack.json)")


def base_url(api: str | None) -> str:
    if api:
        return api.rstrip("/")
    from pap.settings import get_settings

    stack_file = Path(get_settings().state_dir) / "stack.json"
    try:
        return str(json.loads(stack_file.read_text())["api"]).rstrip("/")
    except (OSError, ValueError, KeyError):
        err.print(f"[red]no API address:[/red] pass --api or start the stack (pap up writes {stack_file})")
        raise typer.Exit(2) from None


def send(method: str, path: str, *, api: str | None, headers: dict[str, str], **kwargs: Any) -> httpx.Response:
    """One request; a problem answer (4xx/5xx) is printed as `status title: detail` and exits 1."""
    try:
        response = httpx.request(method, base_url(api) + path, headers=headers, timeout=60, **kwargs)
    except httpx.HTTPError as error:
        err.print(f"[red]cannot reach the API:[/red] {error}")
        raise typer.Exit(1) from None
    if response.status_code >= 400:
        try:
            problem = response.json()
            err.print(f"[red]{response.status_code} {problem.get('title', '')}[/red]: {problem.get('detail', '')}")
        except ValueError:
            err.print(f"[red]{response.status_code}[/red] {response.text[:300]}")
        raise typer.Exit(1)
    return response


def authorized(token: str | None, **extra: str) -> dict[str, str]:
    if not token:
        err.print("[red]no token:[/red] pass --token or set PAP_TOKEN (`pap login` prints one)")
        raise typer.Exit(2)
    return {"Authorization": f"Bearer {token}", **extra}


def call(method: str, path: str, *, token: str | None, api: str | None, **kwargs: Any) -> Any:
    """One authorized API call answering JSON."""
    return send(method, path, api=api, headers=authorized(token), **kwargs).json()


def login(
    email: str = typer.Argument(..., help="The account's email"),
    password: str | None = typer.Option(
        None, envvar="PAP_PASSWORD", help="The password (or PAP_PASSWORD; asked for when missing)"
    ),
    otp: str | None = typer.Option(None, "--otp", help="The authenticator's code (or a recovery code)"),
    api: str | None = ApiOption,
) -> None:
    """Sign in and print an access token: `export PAP_TOKEN=$(pap login you@example.com --otp 123456)`."""
    form = {"username": email, "password": password or getpass.getpass(f"password for {email}: ")}
    if otp:
        form["otp"] = otp
    tokens = send("POST", "/v1/auth/token", api=api, headers={}, data=form).json()
    print(tokens["access_token"])
    err.print(f"signed in as {email}; the token expires in {tokens['expires_in'] // 60} min")
