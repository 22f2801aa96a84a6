"""Save a finished workflow's history for the replay tests.

    python -m tests.histories.record <workflow-id> <file-stem>

Reads the Temporal address from `.pap/stack.json` (a running `pap up`).
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
from pathlib import Path

from temporalio.client import Client

from temporal.client import connect

HERE = Path(__file__).parent


async def record(workflow_id: str, stem: str) -> Path:
    stack = json.loads(Path(".pap/stack.json").read_text())
    client = await connect(stack["temporal"])
    history = await client.get_workflow_handle(workflow_id).fetch_history()
    path = HERE / f"{stem}.json"
    path.write_text(history.to_json())
    return path


if __name__ == "__main__":
    print(asyncio.run(record(sys.argv[1], sys.argv[2])))


async def save_if_recording(client: Client, workflow_id: str, stem: str) -> None:
    """Under `PAP_RECORD_HISTORIES=1` tests save the histories of the paths they drive (re-record after a change)."""
    if os.environ.get("PAP_RECORD_HISTORIES"):
        history = await client.get_workflow_handle(workflow_id).fetch_history()
        (HERE / f"{stem}.json").write_text(history.to_json())
