"""``python -m bot shell``: session status lines, and ``/stop`` typed while an answer streams."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from tests.fakes import FakeInference
from tests.processes import spawn_bot
from tests.rig import INFERENCE_KEY
from tests.scenarios import SAMPLE

pytestmark = pytest.mark.timeout(120)


async def _read_until(stream: asyncio.StreamReader, text: str, seen: list[str]) -> None:
    while text not in "".join(seen):
        line = await asyncio.wait_for(stream.readline(), 30)
        if not line:
            raise AssertionError(f"the shell ended before {text!r}:\n{''.join(seen)}")
        seen.append(line.decode())


async def test_stop_typed_while_an_answer_streams_stops_it(
    tmp_path: Path, inference: FakeInference
) -> None:
    inference.reply_text("word\n" * 200, pieces=200, delay=0.05)  # ten seconds of answer
    inference.reply_text("The next answer.")
    (tmp_path / "runbooks.toml").write_text(SAMPLE)
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("SLACK_", "INFERENCE_", "REDIS_", "RUNBOOKS_"))
    }
    env |= {
        "RUNBOOKS_FILE": str(tmp_path / "runbooks.toml"),
        "INFERENCE_URL": inference.base_url,
        "INFERENCE_KEY": INFERENCE_KEY,
    }
    pipe = asyncio.subprocess.PIPE
    proc = await spawn_bot(
        "shell", "--user", "U0CAROL", env=env, cwd=tmp_path, stdin=pipe, stdout=pipe, stderr=pipe
    )
    assert proc.stdin is not None and proc.stdout is not None
    seen: list[str] = []
    try:
        proc.stdin.write(b"tell me everything\n")
        await proc.stdin.drain()
        await _read_until(proc.stdout, "word\n", seen)
        proc.stdin.write(b"/stop\n")
        await proc.stdin.drain()
        await _read_until(proc.stdout, "Stopped by", seen)
        proc.stdin.write(b"and now?\n")
        proc.stdin.close()
        out, _ = await asyncio.wait_for(proc.communicate(), 60)
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()
    text = "".join(seen) + out.decode()
    assert "· session: processing · tell me everything" in text
    assert "· session: active" in text
    assert text.count("word") < 200
    assert "The next answer." in text
    assert len(inference.closed_early) == 1
