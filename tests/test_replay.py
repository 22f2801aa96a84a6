"""Replay every saved history against today's workflow code: a non-deterministic change fails here.

Histories live in `tests/histories/*.json` (record one with `python -m tests.histories.record`).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.contrib.pydantic import pydantic_data_converter
from temporalio.worker import Replayer

from workers.registry import WORKFLOWS

HISTORIES = sorted((Path(__file__).parent / "histories").glob("*.json"))


def test_there_is_a_history_for_every_workflow() -> None:
    recorded = {path.stem.split("--")[0] for path in HISTORIES}
    names = {getattr(wf, "__temporal_workflow_definition").name for wf in WORKFLOWS}
    assert names <= recorded, f"no saved history for {sorted(names - recorded)}"


@pytest.mark.parametrize("path", HISTORIES, ids=[p.stem for p in HISTORIES])
async def test_saved_history_replays_on_current_code(path: Path) -> None:
    history = WorkflowHistory.from_json(path.stem, path.read_text())
    replayer = Replayer(workflows=WORKFLOWS, data_converter=pydantic_data_converter)
    await replayer.replay_workflow(history)
