"""Fixtures of the test rig: a real redis-server, fake Slack and Inference servers, and the
real bot, served in this process (``bot``, ``act``) or started as ``python -m bot`` (``start``).

Tests import the pieces from plain modules, never from this file or from one another:

- ``tests/rig.py``: the bot served in this process, with settings pointing at the fakes;
- ``tests/scenarios.py``: people, channel, Slack events, the sample runbooks, reading
  answers, cards and runs back from the fake Slack, and waiting for the bot to be done;
- ``tests/processes.py``: redis-server and ``python -m bot`` as child processes;
- ``tests/ports.py``: the ports those children listen on;
- ``tests/transport.py``: httpx ``MockTransport`` pieces for byte-level tests;
- ``tests/fakes/``: ``FakeSlack`` and ``FakeInference``.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import subprocess
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import redis

from bot.runbooks import Catalog, load_catalog
from tests.fakes import FakeInference, FakeSlack
from tests.processes import BotProcess, redis_command, spawn_bot, wait_for_redis
from tests.rig import BOT_TOKEN, INFERENCE_KEY, BotUnderTest, serve, settings_for
from tests.scenarios import CAROL, SAMPLE, BotLog


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
    wait_for_redis(url)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


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


@pytest.fixture
def bot_log() -> Iterator[BotLog]:
    """What the bot logs in this process during the test, down to DEBUG."""
    logger = logging.getLogger("bot")
    level = logger.level
    watch = BotLog()
    logger.addHandler(watch)
    logger.setLevel(logging.DEBUG)
    yield watch
    logger.removeHandler(watch)
    logger.setLevel(level)


@pytest.fixture
def bot_settings(slack: FakeSlack, inference: FakeInference, redis_url: str) -> Any:
    return settings_for(slack, inference, redis_url)


@pytest.fixture
async def bot(bot_settings: Any) -> AsyncIterator[BotUnderTest]:
    async with serve(bot_settings) as served:
        yield served


@pytest.fixture
async def start(tmp_path: Path) -> AsyncIterator[Callable[[dict[str, str]], Awaitable[BotProcess]]]:
    """Launches ``python -m bot`` as a real process; kills what is left at the end."""
    procs: list[asyncio.subprocess.Process] = []

    async def launch(env: dict[str, str]) -> BotProcess:
        proc = await spawn_bot(
            env=env, cwd=tmp_path, stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE
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
def catalog(tmp_path: Path) -> Catalog:
    """The sample runbooks, loaded from a file as the bot loads them."""
    path = tmp_path / "runbooks.toml"
    path.write_text(SAMPLE)
    return load_catalog(path)


@pytest.fixture
async def act(
    tmp_path: Path, slack: FakeSlack, inference: FakeInference, redis_url: str
) -> AsyncIterator[BotUnderTest]:
    """The bot with the sample runbooks; U0CAROL approves through the user group S0OPS."""
    path = tmp_path / "runbooks.toml"
    path.write_text(SAMPLE)
    slack.usergroups["S0OPS"] = [CAROL]
    async with serve(settings_for(slack, inference, redis_url, runbooks_file=str(path))) as bot:
        yield bot
