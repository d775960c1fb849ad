"""Telling the living from the dead: a busy worker is never taken for dead, and a crash is
noticed in seconds (a worker outliving its web process, a dyno restarted under its name)."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import redis.asyncio as aioredis
from redis.exceptions import ConnectionError as RedisConnectionError

from bot.state import keys
from bot.state.connect import connect_sync
from bot.state.heartbeat import Heartbeat
from tests.fakes import FakeInference, FakeSlack
from tests.fakes.sse import chat_chunk, sse_data
from tests.processes import STALL, answering_stalled, bot_env, redis_command, wait_for_redis
from tests.rig import serve, settings_for, working
from tests.scenarios import CHANNEL, BotLog, answer_in, mention, wait_answer


def slow_answer(inference: FakeInference, gap: float) -> None:
    """A model stream that says "Partial " at once, the rest after ``gap`` seconds, and
    ends ``gap`` seconds later."""
    parts = [
        sse_data(chat_chunk({"content": "Partial "})),
        sse_data(chat_chunk({"content": "and the rest."}, finish="stop")),
        sse_data("[DONE]"),
    ]
    inference.reply_raw(parts, delay=gap)


class WorkerThread:
    """A worker with an event loop of its own, in a thread, so that a test can block that
    loop as a long synchronous step would, while this test's loop sweeps."""

    def __init__(self, settings: Any) -> None:
        self._settings = settings
        self._ready = threading.Event()
        self._failure: BaseException | None = None
        self._thread = threading.Thread(target=self._main, name="worker-loop")

    async def __aenter__(self) -> WorkerThread:
        self._thread.start()
        assert await asyncio.to_thread(self._ready.wait, 20), "the worker did not start"
        return self

    async def __aexit__(self, *exc: object) -> None:
        self._loop.call_soon_threadsafe(self._stop.set)
        await asyncio.to_thread(self._thread.join, 30)
        if self._failure is not None:
            raise self._failure

    def _main(self) -> None:
        try:
            asyncio.run(self._serve())
        except BaseException as exc:  # reported by __aexit__, in the test's thread
            self._failure = exc
            self._ready.set()

    async def _serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with working(self._settings):
            self._ready.set()
            await self._stop.wait()

    async def block(self, seconds: float) -> float:
        """Hold the worker's event loop for ``seconds``; returns when the hold began."""
        began: list[float] = []
        holding = threading.Event()

        def hold() -> None:
            began.append(time.time())
            holding.set()
            time.sleep(seconds)

        self._loop.call_soon_threadsafe(hold)
        assert await asyncio.to_thread(holding.wait, 10)
        return began[0]


def worker_and_sweeper(
    slack: FakeSlack, inference: FakeInference, redis_url: str, **worker: Any
) -> tuple[Any, Any]:
    """Settings of a worker taken for dead after 0.6 s of silence, which sweeps only at its
    start, and of a web process that sweeps five times a second."""
    quick = {"copilot_heartbeat_interval": 0.2, "copilot_idle_timeout": 30.0}
    return (
        settings_for(slack, inference, redis_url, copilot_sweep_interval=600, **quick, **worker),
        settings_for(slack, inference, redis_url, copilot_sweep_interval=0.2, **quick),
    )


async def swept_alive(log: BotLog, slack: FakeSlack, ts: str, start: float, end: float) -> None:
    """A sweep ran after ``start`` and before ``end``, and left the answer in ``ts`` alone."""
    async with asyncio.timeout(end - time.time() + 5):
        while True:
            later = [r for r in log.lines("sweep done") if r.created > start]
            if later:
                assert later[0].created < end, "no sweep ran while the worker was held up"
                break
            await asyncio.sleep(0.01)
    assert "interrupted" not in answer_in(slack, CHANNEL, ts)


async def test_a_worker_whose_loop_is_blocked_is_not_taken_for_dead(
    slack: FakeSlack, inference: FakeInference, redis_url: str, bot_log: BotLog
) -> None:
    slow_answer(inference, gap=2.5)
    worker_settings, web_settings = worker_and_sweeper(slack, inference, redis_url)
    async with serve(web_settings, announce=True) as web, WorkerThread(worker_settings) as worker:
        await web.event(mention("busy?", "80.1"))
        await slack.wait_for(lambda s: "Partial" in answer_in(s, CHANNEL, "80.1"))
        # Held for 4 s in the middle of an answer; a sweep well past the dead-after time,
        # while the loop is still held, finds the worker alive.
        began = await worker.block(4.0)
        await swept_alive(bot_log, slack, "80.1", began + 1.5, began + 4.0)
        await wait_answer(slack, CHANNEL, "80.1", "Partial and the rest.")


async def test_a_worker_whose_redis_connections_are_all_busy_is_not_taken_for_dead(
    slack: FakeSlack, inference: FakeInference, redis_url: str, bot_log: BotLog
) -> None:
    slow_answer(inference, gap=2.5)
    worker_settings, web_settings = worker_and_sweeper(
        slack, inference, redis_url, copilot_redis_connections=2
    )
    async with serve(web_settings, announce=True) as web, working(worker_settings) as worker:
        await web.event(mention("busy?", "84.1"))
        await slack.wait_for(lambda s: "Partial" in answer_in(s, CHANNEL, "84.1"))
        # As a slow Redis would: every connection of the worker's pool busy for seconds.
        began = time.time()
        busy = [worker.redis.blpop([f"test:nothing:{n}"], timeout=4) for n in range(2)]
        held = asyncio.gather(*busy)
        await swept_alive(bot_log, slack, "84.1", began + 2.0, began + 3.5)
        await held
        await wait_answer(slack, CHANNEL, "84.1", "Partial and the rest.")


def stalling(
    slack: FakeSlack, inference: FakeInference, redis_url: str, **env: str
) -> dict[str, str]:
    """A bot process (web and one worker) whose next answer stalls for a minute, and which
    gives its answers a second to finish when it stops."""
    inference.reply_stall(STALL, stall_seconds=60)
    return bot_env(
        slack, inference, redis_url, COPILOT_IDLE_TIMEOUT="60", COPILOT_SHUTDOWN_GRACE="1", **env
    )


def _gone(pid: int) -> bool:
    """Exited: no such process, or a zombie no one has reaped yet."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return True
    return "\nState:\tZ" in status


async def test_a_worker_whose_web_process_was_killed_marks_its_answer_at_once(
    slack: FakeSlack, inference: FakeInference, redis_url: str, start: Any
) -> None:
    # Every answer slot busy: the worker takes nothing new, and must notice all the same.
    env = stalling(slack, inference, redis_url, COPILOT_CONCURRENT_ANSWERS="1")
    bot = await answering_stalled(start, env, slack, "orphaned", "81.1")
    [worker] = bot.children()
    bot.proc.kill()  # the web process alone, as an out-of-memory kill would
    await bot.proc.wait()
    await bot.wait_for_line("the web process that started this worker is gone", within=5)
    # It stops as at SIGTERM: the answer, still stalled after the grace, is marked.
    await slack.wait_for(
        lambda s: "interrupted by a restart" in answer_in(s, CHANNEL, "81.1"), timeout=5
    )
    async with asyncio.timeout(10):
        while not _gone(worker):  # noqa: ASYNC110 (a process's end sets no event here)
            await asyncio.sleep(0.05)


async def test_a_dyno_killed_and_restarted_reports_its_answer_within_seconds(
    slack: FakeSlack, inference: FakeInference, redis_url: str, start: Any
) -> None:
    # The default heartbeat (10 s) and sweep (15 s): the sweep alone would take 30 s or more.
    env = stalling(slack, inference, redis_url, DYNO="web.1")
    bot = await answering_stalled(start, env, slack, "doomed", "82.1")
    await bot.crash()

    again = await start(env)
    await again.wait_for_line("serving HTTP")
    started = time.monotonic()
    # The answer was the worker's: the new web.1's worker claims it.
    took_over = await again.wait_for_line('"previous": "web.1/worker-0#', within=10)
    assert "took over from the process that ran under this name before" in took_over
    await slack.wait_for(
        lambda s: "interrupted by a restart" in answer_in(s, CHANNEL, "82.1"), timeout=10
    )
    assert time.monotonic() - started < 10
    notices = [m for m in slack.messages(CHANNEL, "82.1") if "interrupted" in m.body]
    assert len(notices) == 1


async def test_a_live_process_under_the_same_name_keeps_its_work(
    slack: FakeSlack, inference: FakeInference, redis_url: str, bot_log: BotLog
) -> None:
    slow_answer(inference, gap=1.0)
    settings = settings_for(slack, inference, redis_url, dyno="web.1", copilot_idle_timeout=30.0)
    # As when Heroku starts the new web.1 before the old one has stopped (preboot).
    async with serve(settings) as old:
        await old.event(mention("still mine?", "83.1"))
        await slack.wait_for(lambda s: "Partial" in answer_in(s, CHANNEL, "83.1"))
        async with serve(settings):
            await bot_log.wait_for(
                "the previous process under this name still runs; its work stays with it"
            )
            assert "interrupted" not in answer_in(slack, CHANNEL, "83.1")
            await wait_answer(slack, CHANNEL, "83.1", "Partial and the rest.")


async def test_workers_started_by_a_web_process_are_named_after_it(
    slack: FakeSlack, inference: FakeInference, redis_url: str, start: Any
) -> None:
    env = bot_env(slack, inference, redis_url, DYNO="web.1", COPILOT_WORKERS="2")
    bot = await start(env)
    await bot.wait_for_line("serving HTTP")
    client = aioredis.Redis.from_url(redis_url, decode_responses=True)
    try:
        async with asyncio.timeout(15):
            while True:
                names = await client.keys("copilot:dyno:*")
                if len(names) >= 3:
                    break
                await asyncio.sleep(0.05)
        assert sorted(names) == [
            "copilot:dyno:web.1",
            "copilot:dyno:web.1/worker-0",
            "copilot:dyno:web.1/worker-1",
        ]
    finally:
        await client.aclose()


def _beating(process: str) -> bool:
    return any(thread.name == f"heartbeat:{process}" for thread in threading.enumerate())


async def test_the_heartbeat_thread_ends_with_its_process(
    slack: FakeSlack, inference: FakeInference, redis_url: str
) -> None:
    async with serve(settings_for(slack, inference, redis_url)) as bot:
        process = bot.runtime.work.process
        assert _beating(process)
    assert not _beating(process)


async def _until_beating(client: aioredis.Redis, process: str) -> None:
    async with asyncio.timeout(10):
        while True:
            # The first command after Redis came back finds the old connection closed.
            with contextlib.suppress(RedisConnectionError):
                if await client.exists(keys.heartbeat(process)):
                    return
            await asyncio.sleep(0.02)


def _redis_server(argv: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def test_the_heartbeat_carries_on_when_redis_comes_back() -> None:
    url, argv = redis_command()
    server = _redis_server(argv)
    await asyncio.to_thread(wait_for_redis, url)
    beat = Heartbeat(connect_sync(url, read_timeout=2), "p1", interval=0.1, ttl=0.3)
    client = aioredis.Redis.from_url(url)
    beat.start()
    try:
        await _until_beating(client, "p1")
        # Redis goes away and comes back empty, as after a restart without persistence.
        server.kill()
        server.wait()
        await asyncio.sleep(1.0)  # an outage longer than the client's own retries
        server = _redis_server(argv)
        await asyncio.to_thread(wait_for_redis, url)
        await _until_beating(client, "p1")
    finally:
        await beat.stop()
        await client.aclose()
        server.terminate()
        server.wait()
