"""The test rig: a real redis-server, fake Slack and Inference servers, and the real bot.

Every scenario drives the bot the way Slack does: signed HTTP requests to the real
``/slack/events`` endpoint of an aiohttp server on loopback, with the bot's Web API calls
going to ``FakeSlack`` and its model calls to ``FakeInference``.
"""

from __future__ import annotations

import asyncio
import json
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
import pytest
import redis
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from bot.app import Runtime, build_runtime
from bot.config import load_settings
from bot.server import web_app
from tests.fakes import FakeInference, FakeSlack

SIGNING_SECRET = "test-signing-secret"
NO_RUNBOOKS = Path(__file__).parent / "data" / "no-runbooks.toml"
BOT_TOKEN = "xoxb-test"
INFERENCE_KEY = "inf-test"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def redis_command() -> tuple[str, list[str]]:
    """A throwaway redis-server on a free loopback port: its URL and its command line."""
    port = _free_port()
    workdir = tempfile.mkdtemp(prefix="copilot-redis-")
    binary = shutil.which("redis-server") or "redis-server"
    argv = [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", workdir]  # fmt: skip
    return f"redis://127.0.0.1:{port}/0", argv


@pytest.fixture(scope="session")
def redis_server() -> Iterator[str]:
    binary = shutil.which("redis-server")
    if binary is None:
        pytest.exit(
            "redis-server is not installed: run .ci/run (it installs it), or "
            "`apt-get install redis-server` / `brew install redis`.",
            returncode=3,
        )
    url, argv = redis_command()
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for_redis(url)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def _wait_for_redis(url: str, **options: Any) -> None:
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


@pytest.fixture
def redis_url(redis_server: str) -> str:
    client = redis.Redis.from_url(redis_server)
    client.flushall()
    client.close()
    return redis_server


@pytest.fixture
async def slack() -> AsyncIterator[FakeSlack]:
    async with FakeSlack(token=BOT_TOKEN) as fake:
        yield fake


@pytest.fixture
async def inference() -> AsyncIterator[FakeInference]:
    async with FakeInference(key=INFERENCE_KEY) as fake:
        yield fake


@dataclass
class BotUnderTest:
    """The real bot, served on loopback, and a way to talk to it as Slack does."""

    runtime: Runtime
    url: str
    http: httpx.AsyncClient
    _events: int = field(default=0)

    async def post(
        self,
        body: str,
        content_type: str,
        *,
        signed: bool = True,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        sent = {"content-type": content_type, "x-slack-request-timestamp": ts}
        if signed:
            verifier = SignatureVerifier(SIGNING_SECRET)
            sent["x-slack-signature"] = verifier.generate_signature(timestamp=ts, body=body)
        sent.update(headers or {})
        return await self.http.post(f"{self.url}/slack/events", content=body, headers=sent)

    async def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        self._events += 1
        body = {
            "token": "legacy",
            "team_id": "T0TEAM",
            "api_app_id": "A0APP",
            "type": "event_callback",
            "event_id": event_id or f"Ev{self._events:08d}",
            "event_time": int(time.time()),
            "event": event,
        }
        return await self.post(json.dumps(body), "application/json", headers=headers)

    async def command(self, **fields: str) -> httpx.Response:
        return await self.post(urlencode(fields), "application/x-www-form-urlencoded")

    async def action(self, payload: dict[str, Any]) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post(body, "application/x-www-form-urlencoded")


def settings_for(
    slack: FakeSlack, inference: FakeInference, redis_url: str | None, **overrides: Any
) -> Any:
    values: dict[str, Any] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack.base_url,
        "inference_url": inference.base_url,
        "inference_key": INFERENCE_KEY,
        "redis_url": redis_url,
        "copilot_update_interval": 0.05,
        "copilot_idle_timeout": 2.0,
        # No runbooks unless a test brings its own file.
        "runbooks_file": str(NO_RUNBOOKS),
        "_env_file": None,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture
def bot_settings(slack: FakeSlack, inference: FakeInference, redis_url: str) -> Any:
    return settings_for(slack, inference, redis_url)


@pytest.fixture
async def bot(bot_settings: Any) -> AsyncIterator[BotUnderTest]:
    async with serve(bot_settings) as served:
        yield served


class serve:
    """The web side: ``announce=True`` is a web process with workers, which only queues."""

    def __init__(self, settings: Any, *, announce: bool = False) -> None:
        self._settings = settings
        self._announce = announce

    async def __aenter__(self) -> BotUnderTest:
        self._runtime = await build_runtime(self._settings, announce=self._announce)
        self._runner = web.AppRunner(web_app(self._runtime))
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self._http = httpx.AsyncClient(timeout=10)
        return BotUnderTest(self._runtime, f"http://127.0.0.1:{port}", self._http)

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()
        await self._runner.cleanup()
        await asyncio.sleep(0.01)
        await self._runtime.inflight.drain(grace=5)
        await self._runtime.aclose()


class working:
    """A worker (``python -m bot worker``) in this process, until the block ends."""

    def __init__(self, settings: Any, **options: Any) -> None:
        self._settings = settings
        self._options = {"capacity": settings.copilot_concurrent_answers, **options}

    async def __aenter__(self) -> Runtime:
        from bot.worker import Worker

        self._runtime = await build_runtime(self._settings)
        runtime = self._runtime
        worker = Worker(runtime.queue, runtime.scheduler, runtime.tasks, **self._options)
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(worker.run(self._stop))
        return runtime

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await self._task
        await self._runtime.inflight.drain(grace=5)
        await self._runtime.aclose()


@pytest.fixture
async def start(tmp_path: Any) -> AsyncIterator[Any]:
    """Launches ``python -m bot`` as a real process; kills what is left at the end."""
    import sys

    from tests.processes import BotProcess

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
            proc.terminate()  # its workers end with it
            try:
                await asyncio.wait_for(proc.wait(), 10)
            except TimeoutError:
                proc.kill()
                await proc.wait()


@pytest.fixture
async def act(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> AsyncIterator[BotUnderTest]:
    """The bot with the sample runbooks; U0CAROL approves through the user group S0OPS."""
    from tests.test_runbooks import SAMPLE

    path = tmp_path / "runbooks.toml"
    path.write_text(SAMPLE)
    slack.usergroups["S0OPS"] = ["U0CAROL"]
    async with serve(settings_for(slack, inference, redis_url, runbooks_file=str(path))) as bot:
        yield bot
