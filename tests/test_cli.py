"""`pap up` fails fast, in one line, when it cannot start; it leaves nothing running."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile


def test_pap_up_refuses_an_occupied_api_port() -> None:
    with socket.socket() as busy, tempfile.TemporaryDirectory() as state:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        env = {**os.environ, "PAP_API_PORT": str(port), "PAP_STATE_DIR": state}
        result = subprocess.run(
            [sys.executable, "-m", "pap", "up"], env=env, capture_output=True, text=True, timeout=60
        )
    assert result.returncode == 1
    assert f"port {port} for the API is already in use" in result.stderr
    assert "PAP_API_PORT" in result.stderr
    assert "Traceback" not in result.stderr
