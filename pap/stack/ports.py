"""Port checks so a misconfigured or busy port fails fast with a one-line explanation."""

from __future__ import annotations

import secrets
import socket


class PortInUse(RuntimeError):
    pass


def is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def ensure_free(port: int, what: str, setting: str) -> None:
    if not is_free(port):
        raise PortInUse(
            f"port {port} for {what} is already in use (another `pap up`, or another server?): "
            f"stop it or set {setting} to a free port"
        )


_handed_out: set[int] = set()


def free_port() -> int:
    """A free port below the kernel's ephemeral range, never the same twice in this process.

    Ports from `bind(0)` come from the ephemeral range, where an outgoing connection
    may grab them before the server that was promised one binds it.
    """
    while True:
        port = secrets.choice(range(20_000, 32_000))
        if port not in _handed_out and is_free(port):
            _handed_out.add(port)
            return port


def is_listening(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.5):
            return True
    except OSError:
        return False
