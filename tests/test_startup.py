"""The real process: start-up lines, serving over HTTP, and a graceful SIGTERM."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from slack_sdk.signature import SignatureVerifier

from tests.conftest import BOT_TOKEN, INFERENCE_KEY, SIGNING_SECRET, _free_port
from tests.fakes import FakeInference, FakeSlack
from tests.test_ask import CHANNEL, mention

ROOT = Path(__file__).resolve().parent.parent


class BotProcess:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []

    async def wait_for_line(self, needle: str, within: float = 15) -> str:
        assert self.proc.stderr is not None
        async with asyncio.timeout(within):
            while True:
                raw = await self.proc.stderr.readline()
                if not raw:
                    raise AssertionError("process ended:\n" + "".join(self.lines))
                line = raw.decode()
                self.lines.append(line)
                if needle in line:
                    return line


def bot_env(
    slack: FakeSlack,
    inference: FakeInference,
    redis_url: str,
    port: int,
    tmp_path: Path,
    **extra: str,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INFERENCE_"))}
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.base_url,
        INFERENCE_URL=inference.base_url,
        INFERENCE_KEY=INFERENCE_KEY,
        REDIS_URL=redis_url,
        PORT=str(port),
        RUNBOOKS_FILE=str(tmp_path / "none.toml"),
        PYTHONPATH=str(ROOT),
        COPILOT_UPDATE_INTERVAL="0.05",
    )
    env.update(extra)
    return env


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[object]:
    procs: list[asyncio.subprocess.Process] = []

    async def launch(env: dict[str, str]) -> BotProcess:
        proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            env=env,
            cwd=tmp_path,
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.PIPE,
        )
        procs.append(proc)
        return BotProcess(proc, int(env["PORT"]))

    yield launch
    for proc in procs:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


def signed(event: dict[str, object]) -> tuple[str, dict[str, str]]:
    body = json.dumps(
        {
            "type": "event_callback",
            "team_id": "T0TEAM",
            "event_id": f"Ev{time.time_ns()}",
            "event": event,
        }
    )
    ts = str(int(time.time()))
    sig = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=ts, body=body)
    return body, {
        "content-type": "application/json",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": sig,
    }


async def test_token_refused_by_slack_stops_with_one_line(
    slack: FakeSlack, inference: FakeInference, redis_url: str, tmp_path: Path, start: object
) -> None:
    env = bot_env(
        slack,
        inference,
        redis_url,
        _free_port(),
        tmp_path,
        SLACK_BOT_TOKEN="xoxb-wrong-token-value",
    )
    bot = await start(env)  # type: ignore[operator]
    assert await asyncio.wait_for(bot.proc.wait(), 20) == 2
    assert bot.proc.stderr is not None
    err = (await bot.proc.stderr.read()).decode()
    assert "SLACK_BOT_TOKEN was refused by Slack (invalid_auth)" in err
    assert "Traceback" not in err and "xoxb-wrong-token-value" not in err


async def test_unreachable_redis_is_one_line_and_healthz_503(
    slack: FakeSlack, inference: FakeInference, tmp_path: Path, start: object
) -> None:
    port = _free_port()
    env = bot_env(slack, inference, "redis://127.0.0.1:1/0", port, tmp_path)
    bot = await start(env)  # type: ignore[operator]
    line = await bot.wait_for_line("Redis is not reachable")
    await bot.wait_for_line("serving HTTP")
    assert "Traceback" not in "".join(bot.lines) and line.count("\n") == 1
    async with httpx.AsyncClient() as http:
        assert (await http.get(f"{bot.url}/healthz")).status_code == 503


async def test_sigterm_lets_the_answer_in_flight_finish(
    slack: FakeSlack, inference: FakeInference, redis_url: str, tmp_path: Path, start: object
) -> None:
    answer = " ".join(f"w{i}" for i in range(30))
    inference.reply_text(answer, pieces=30, delay=0.05)  # about 1.5 s of streaming
    bot = await start(bot_env(slack, inference, redis_url, _free_port(), tmp_path))  # type: ignore[operator]
    await bot.wait_for_line("serving HTTP")
    body, headers = signed(mention("long one", "20.1"))
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{bot.url}/slack/events", content=body, headers=headers)
    assert response.status_code == 200
    await inference.wait_for_requests(1)
    bot.proc.send_signal(signal.SIGTERM)
    assert await asyncio.wait_for(bot.proc.wait(), 20) == 0
    assert "".join(slack.thread_bodies(CHANNEL, "20.1")) == answer
    assert slack.count("chat.stopStream") == 1
