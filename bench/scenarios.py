"""The loads, and one phase: fresh fakes and bot processes, a burst of events, the outcome.

Every phase starts from an empty Redis, a new FakeSlack/TimedInference pair and new bot
processes, so counters and the bots' per-process state (such as channels they stopped
streaming in) never carry over between phases.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import redis.asyncio as aioredis

from bench.analysis import Ask, Outcome, method_counts, outcomes
from bench.events import TEAM, Acks, Delivery, channel_name, mention_body, send_burst
from bench.fakes import Script, TieredSlack, TimedInference
from bench.rig import BotEndpoints, BotProcess, Memory, RedisServer
from bot.state import keys

# Slack's tiers as token buckets: (calls per minute, burst). chat.postMessage is limited per
# channel, the others per workspace (one FakeSlack is one workspace, shared by both bots).
SLACK_TIERS: dict[str, tuple[int, int]] = {
    "chat.update": (50, 10),
    "chat.appendStream": (100, 20),
    "chat.startStream": (20, 5),
    "chat.stopStream": (20, 5),
}
SLACK_CHANNEL_TIERS: dict[str, tuple[int, int]] = {"chat.postMessage": (60, 10)}
SEND_CONCURRENCY = 50
SAMPLE_SECONDS = 0.25


@dataclass(frozen=True)
class Load:
    name: str
    asks: int
    channels: int  # threads are spread round-robin over this many channels
    pieces: int  # chunks ("tokens") per answer
    delay: float  # seconds between chunks
    duplicates: int  # asks also delivered again, as Slack retries, to the other process
    window: float  # seconds to wait after the burst for every answer to be done


BURST = Load("burst200", 200, 20, 20, 0.02, 20, 40.0)
STREAM = Load("stream50", 50, 10, 300, 0.02, 0, 110.0)
OPEN = Load("open500", 500, 100, 80, 0.4, 0, 75.0)
LOADS = (BURST, STREAM, OPEN)


@dataclass
class PhaseResult:
    load: Load
    procs: int
    acks: Acks
    outcomes: list[Outcome]
    duplicate_attempts: list[int]  # answer attempts of each duplicated ask (1 = answered once)
    calls: Counter[str]
    rate_limited: dict[str, int]
    cpu_seconds: float
    tokens: int
    memory_at_peak: list[Memory]  # per process, sampled while most streams were open
    memory_end: list[Memory]
    peak_open: int
    settled: bool  # every answer done (or given up) within the window
    seconds: float
    loop_lag_p99_ms: float
    bot_log: Counter[str] = field(default_factory=Counter)


def plan(load: Load, phase_index: int) -> list[Ask]:
    asks = []
    for i in range(load.asks):
        thread_ts = f"{1_800_000_000 + phase_index * 1000}.{i:06d}"
        words = (f"{load.name[:1]}{i}w{j}" for j in range(load.pieces))
        # About one model chunk per word, a paragraph break every 25 words.
        text = "".join(word + ("\n\n" if j % 25 == 24 else " ") for j, word in enumerate(words))
        script = Script(text.strip(), load.pieces, load.delay)
        channel = channel_name(i % load.channels)
        asks.append(Ask(channel, thread_ts, f"bench question {thread_ts}", script))
    return asks


def deliveries(asks: list[Ask], bots: list[BotProcess], duplicates: int) -> list[Delivery]:
    sent = []
    for i, ask in enumerate(asks):
        body = mention_body(f"EvB{ask.thread_ts}", ask.channel, ask.thread_ts, ask.question)
        sent.append(Delivery(bots[i % len(bots)].url, body))
        if i < duplicates:
            # Slack's retry of the same event, to the other process when there is one.
            sent.append(Delivery(bots[(i + 1) % len(bots)].url, body, retry=True))
    return sent


async def run_phase(
    load: Load, procs: int, redis: RedisServer, workdir: Path, phase_index: int
) -> PhaseResult:
    await redis.flush()
    asks = plan(load, phase_index)
    async with TieredSlack() as slack, TimedInference() as inference:
        for ask in asks:
            inference.expect(ask.question, ask.script)
        endpoints = BotEndpoints(slack.base_url, inference.base_url, redis.url)
        names = [f"{load.name}-p{procs}-bot{n}" for n in range(procs)]
        bots = [BotProcess(name, endpoints, workdir) for name in names]
        try:
            await asyncio.gather(*(bot.start() for bot in bots))
            for method, (per_minute, burst) in SLACK_TIERS.items():
                slack.limit(method, per_minute, burst)
            for method, (per_minute, burst) in SLACK_CHANNEL_TIERS.items():
                slack.limit_per_channel(method, per_minute, burst)
            async with _sampling(bots, inference) as sampler, _loop_lag() as lag:
                cpu_before = sum(bot.cpu_seconds() for bot in bots)
                started = time.monotonic()
                acks = await send_burst(deliveries(asks, bots, load.duplicates), SEND_CONCURRENCY)
                settled = await _settle(redis.url, asks, started + load.window)
                seconds = time.monotonic() - started
                cpu = sum(bot.cpu_seconds() for bot in bots) - cpu_before
                memory_end = [bot.memory() for bot in bots]
        finally:
            await asyncio.gather(*(bot.stop() for bot in bots))
        log: Counter[str] = Counter()
        for bot in bots:
            log.update(bot.log_summary())
        results = outcomes(slack, inference, asks)
        return PhaseResult(
            load=load,
            procs=procs,
            acks=acks,
            outcomes=results,
            duplicate_attempts=[r.attempts for r in results[: load.duplicates]],
            calls=method_counts(slack),
            rate_limited=dict(slack.rate_limited),
            cpu_seconds=cpu,
            tokens=inference.tokens_sent(),
            memory_at_peak=sampler.at_peak,
            memory_end=memory_end,
            peak_open=inference.peak_open,
            settled=settled,
            seconds=seconds,
            loop_lag_p99_ms=lag.p99_ms(),
            bot_log=log,
        )


async def _settle(redis_url: str, asks: list[Ask], deadline: float) -> bool:
    """Wait until every answer is done, or ``deadline`` (monotonic) passes.

    Done: the answer is in the thread's history (the bot remembers it last), or the question
    was taken and its thread is idle (no lock, empty queue: the bot gave up on it).
    """
    client = aioredis.Redis.from_url(redis_url)
    try:
        while time.monotonic() < deadline:
            async with client.pipeline(transaction=False) as pipe:
                for ask in asks:
                    thread = keys.thread_id(TEAM, ask.channel, ask.thread_ts)
                    pipe.llen(keys.history(thread))
                    pipe.exists(keys.seen_message(ask.channel, ask.thread_ts))
                    pipe.exists(keys.lock(thread))
                    pipe.llen(keys.queue(thread))
                replies = await pipe.execute()
            if all(
                answered or (taken and not locked and not queued)
                for answered, taken, locked, queued in zip(*[iter(replies)] * 4, strict=True)
            ):
                return True
            await asyncio.sleep(0.25)
        return False
    finally:
        await client.aclose()


@dataclass
class _Sampler:
    bots: list[BotProcess]
    inference: TimedInference
    best_open: int = -1
    at_peak: list[Memory] = field(default_factory=list)

    def sample(self) -> None:
        open_now = self.inference.open_streams
        if open_now < self.best_open:
            return
        memory = [bot.memory() for bot in self.bots]
        if open_now > self.best_open or sum(m.rss_kb for m in memory) > sum(
            m.rss_kb for m in self.at_peak
        ):
            self.best_open, self.at_peak = open_now, memory


@contextlib.asynccontextmanager
async def _sampling(bots: list[BotProcess], inference: TimedInference) -> AsyncIterator[_Sampler]:
    """Record each bot's RSS whenever the number of open model streams is at its highest."""
    sampler = _Sampler(bots, inference)

    async def loop() -> None:
        while True:
            with contextlib.suppress(OSError):
                sampler.sample()
            await asyncio.sleep(SAMPLE_SECONDS)

    task = asyncio.create_task(loop())
    try:
        yield sampler
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@dataclass
class _Lag:
    samples: list[float] = field(default_factory=list)

    def p99_ms(self) -> float:
        ordered = sorted(self.samples)
        return ordered[int(0.99 * (len(ordered) - 1))] * 1000 if ordered else 0.0


@contextlib.asynccontextmanager
async def _loop_lag(tick: float = 0.05) -> AsyncIterator[_Lag]:
    """How late this process's own event loop runs (the fakes share it): a noise gauge."""
    lag = _Lag()

    async def loop() -> None:
        while True:
            before = time.monotonic()
            await asyncio.sleep(tick)
            lag.samples.append(max(0.0, time.monotonic() - before - tick))

    task = asyncio.create_task(loop())
    try:
        yield lag
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
