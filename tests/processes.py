"""The child processes tests start: redis-server, and the bot itself (``python -m bot``),
with ways to talk to a bot process as Slack does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import sys
import tempfile
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import redis
from slack_sdk.signature import SignatureVerifier

from tests.fakes import FakeInference, FakeSlack
from tests.ports import reserve_port
from tests.rig import BOT_TOKEN, INFERENCE_KEY, NO_RUNBOOKS, SIGNING_SECRET
from tests.scenarios import CHANNEL, answer_in, mention

ROOT = Path(__file__).resolve().parent.parent

# A model stream that sends one chunk of text and then nothing, for answers cut off midway.
# The chunk ends with a space: a last word still open is held back until the stream goes on.
STALL = [b'data: {"choices":[{"index":0,"delta":{"content":"Partial "}}]}\n\n']


# -- redis-server --------------------------------------------------------------------------


def redis_command() -> tuple[str, list[str]]:
    """A throwaway redis-server on a reserved loopback port: its URL and its command line."""
    port = reserve_port()
    workdir = tempfile.mkdtemp(prefix="copilot-redis-")
    binary = shutil.which("redis-server") or "redis-server"
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", workdir]  # fmt: skip
    return f"redis://127.0.0.1:{port}/0", argv


def wait_for_redis(url: str, **options: Any) -> None:
    client = redis.Redis.from_url(url, **options)
    deadline = time.monotonic() + 10
    while True:
        try:
            client.ping()
            return
        except redis.ConnectionError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.05)
        finally:
            client.close()


# -- python -m bot -------------------------------------------------------------------------


async def spawn_bot(
    *args: str,
    env: dict[str, str],
    cwd: Path,
    stdin: int | None = None,
    stdout: int | None = None,
    stderr: int | None = None,
) -> asyncio.subprocess.Process:
    """``python -m bot`` with ``args`` and only ``env``; a pipe is ``asyncio.subprocess.PIPE``."""
    argv = (sys.executable, "-m", "bot", *args)
    return await asyncio.create_subprocess_exec(
        *argv, env=env, cwd=cwd, stdin=stdin, stdout=stdout, stderr=stderr
    )


class BotProcess:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []

    def children(self) -> list[int]:
        """The worker processes this web process started."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    async def crash(self) -> None:
        """SIGKILL the web process and its workers at once, as when a dyno dies."""
        for pid in self.children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.kill()
        await self.proc.wait()

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
    slack: FakeSlack, inference: FakeInference, redis_url: str, **extra: str
) -> dict[str, str]:
    """The environment of a bot process pointed at the fakes, serving on a reserved port."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INFERENCE_"))}
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.base_url,
        INFERENCE_URL=inference.base_url,
        INFERENCE_KEY=INFERENCE_KEY,
        REDIS_URL=redis_url,
        PORT=str(reserve_port()),
        RUNBOOKS_FILE=str(NO_RUNBOOKS),
        PYTHONPATH=str(ROOT),
        COPILOT_UPDATE_INTERVAL="0.05",
    )
    env.update(extra)
    return env


def soon_dead_env(slack: FakeSlack, inference: FakeInference, redis_url: str) -> dict[str, str]:
    """A bot process whose death the others notice within a second or two."""
    return bot_env(
        slack,
        inference,
        redis_url,
        COPILOT_HEARTBEAT_INTERVAL="0.2",
        COPILOT_LOCK_TTL="1",
        COPILOT_IDLE_TIMEOUT="60",
    )


def signed(event: dict[str, object]) -> tuple[str, dict[str, str]]:
    body = json.dumps(
        {
            "type": "event_callback",
            "team_id": "T0TEAM",
            "event_id": f"Ev{time.time_ns()}",
            "event": event,
        }
    )
    return body, _headers(body, "application/json")


def signed_form(fields: dict[str, str]) -> tuple[str, dict[str, str]]:
    body = urlencode(fields)
    return body, _headers(body, "application/x-www-form-urlencoded")


def _headers(body: str, content_type: str) -> dict[str, str]:
    ts = str(int(time.time()))
    sig = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=ts, body=body) or ""
    return {"content-type": content_type, "x-slack-request-timestamp": ts, "x-slack-signature": sig}


async def ask_process(url: str, event: dict[str, Any]) -> None:
    """Deliver ``event`` to the bot process at ``url``, signed, and check it was taken."""
    body, headers = signed(event)
    async with httpx.AsyncClient() as http:
        response = await http.post(f"{url}/slack/events", content=body, headers=headers)
    assert response.status_code == 200


async def answering_stalled(
    start: Any, env: dict[str, str], slack: FakeSlack, question: str, ts: str
) -> Any:
    """A bot process in the middle of an answer whose model has gone quiet."""
    bot = await start(env)
    await bot.wait_for_line("serving HTTP")
    await ask_process(bot.url, mention(question, ts))
    await slack.wait_for(lambda s: "Partial" in answer_in(s, CHANNEL, ts))
    return bot
