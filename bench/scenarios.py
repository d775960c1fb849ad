"""The loads and setups, and one phase: fresh fakes and bots, a burst of events, the outcome.

Every phase starts from an empty Redis, a new FakeSlack/TimedInference pair and new bot
processes, so counters and the bots' per-process state (such as channels they stopped
streaming in) never carry over between phases.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import sys
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import redis.asyncio as aioredis

from bench.analysis import Ask, Outcome, method_counts, outcomes
from bench.events import TEAM, Acks, Delivery, Sender, channel_name, mention_body
from bench.fakes import Script, TieredSlack, TimedInference
from bench.rig import (
    ROOT,
    BotEndpoints,
    BotProcess,
    ProcStat,
    RedisServer,
    free_port,
    terminate,
    tree_cpu,
)
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
# With every answer done in Redis but some not whole in Slack, how long without a call that
# changes a thread (429-refused ones included) before the phase ends anyway: a few times the
# Retry-After the tiers give (1-2 s), so a bot waiting out a refusal is not cut off.
QUIET_SECONDS = 5.0


@dataclass(frozen=True)
class Load:
    name: str
    asks: int
    channels: int  # threads are spread round-robin over this many channels
    pieces: int  # chunks ("tokens") per answer
    delay: float  # seconds between chunks
    duplicates: int  # asks also delivered again, as Slack retries, to the other process
    window: float  # seconds to wait after the burst for every answer to be done


BURST = Load("burst200", 200, 20, 20, 0.02, 20, 60.0)
STREAM = Load("stream50", 50, 10, 300, 0.02, 0, 110.0)
OPEN = Load("open500", 500, 100, 80, 0.4, 0, 75.0)
LOADS = (BURST, STREAM, OPEN)


@dataclass(frozen=True)
class Setup:
    """How the bot is deployed: ``bots`` web processes (``python -m bot``) sharing Redis and
    the fakes, each with ``COPILOT_WORKERS=workers`` (0: it answers by itself)."""

    key: str  # for --setups
    label: str
    bots: int
    workers: int


SINGLE = Setup("single", "1 process", 1, 0)
SPLIT = Setup("split", "web + worker", 1, 1)
SPLIT2 = Setup("split2", "2 × (web + worker)", 2, 1)
SETUPS = (SINGLE, SPLIT, SPLIT2)


@dataclass(frozen=True)
class ProcMemory:
    role: str
    rss_kb: int
    hwm_kb: int
    ended: bool = False  # the process ended during the phase: its last sample


@dataclass
class PhaseResult:
    load: Load
    setup: Setup
    acks: Acks
    outcomes: list[Outcome]
    duplicate_attempts: list[int]  # answer attempts of each duplicated ask (1 = answered once)
    calls: Counter[str]
    rate_limited: dict[str, int]
    cpu_seconds: float  # every process of every bot's tree
    cpu_by_role: dict[str, float]  # the same, by kind of process still there at the end
    tokens: int
    memory_at_peak: list[list[ProcMemory]]  # per bot, per OS process, at most open streams
    memory_end: list[list[ProcMemory]]  # per bot, per OS process (VmHWM), at the end
    processes_at_burst: list[list[str]]  # per bot, the roles of its OS processes
    processes_at_end: list[list[str]]
    processes_ended: int  # OS processes of the bots that ended during the phase
    web_exits: list[int | None]  # per bot: exit code of a web process that ended by itself
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


def deliveries(asks: list[Ask], urls: list[str], duplicates: int) -> list[Delivery]:
    """Event i to web process i mod n; the first ``duplicates`` again, as Slack's retries."""
    sent = []
    for i, ask in enumerate(asks):
        body = mention_body(
            f"EvB{ask.thread_ts}", ask.channel, ask.thread_ts, ask.question, asker(ask, i)
        )
        sent.append(Delivery(urls[i % len(urls)], body))
        if i < duplicates:
            # Slack's retry of the same event, to the other web process when there is one.
            sent.append(Delivery(urls[(i + 1) % len(urls)], body, retry=True))
    return sent


# An incident's questions come from many people: a few each, within the default
# ``max_questions_per_user_per_minute`` (10) even when phases follow each other closely.
ASKS_PER_PERSON = 5


def asker(ask: Ask, index: int) -> str:
    phase = ask.thread_ts.split(".")[0][-4:]  # thread ts are numbered per phase (see plan)
    return f"U0B{phase}P{index // ASKS_PER_PERSON:03d}"


async def harness_floor(load: Load, client: str) -> Acks:
    """The phase's burst (same events, retries, concurrency and client) sent to a server that
    does nothing (bench/nullserver.py, in its own process): the harness's share of an ack."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bench.nullserver", str(port), cwd=ROOT
    )
    try:
        deadline = time.monotonic() + 15
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{url}/healthz")).status_code == 200:
                        break
                if proc.returncode is not None or time.monotonic() > deadline:
                    raise RuntimeError("the null server did not start")
                await asyncio.sleep(0.1)
        sends = deliveries(plan(load, 0), [url], load.duplicates)
        async with Sender(sends, SEND_CONCURRENCY, client) as sender:
            await sender.go()
            return await sender.acks()
    finally:
        await terminate(proc, grace=5.0)


def _snapshot(bots: list[BotProcess]) -> list[list[ProcStat]]:
    return [bot.processes() for bot in bots]


def _cpu(trees: list[list[ProcStat]]) -> float:
    return sum(tree_cpu(tree) for tree in trees)


def _cpu_by_role(
    before: list[list[ProcStat]], after: list[list[ProcStat]], total: float
) -> dict[str, float]:
    """Each process's own CPU time in the phase (from its start-of-phase sample, or from 0
    when it started later), summed by role; what is left of ``total`` was used by processes
    that ended during the phase."""
    start = {p.key: p.cpu for tree in before for p in tree}
    by_role: dict[str, float] = {}
    for tree in after:
        for p in tree:
            by_role[p.role] = by_role.get(p.role, 0.0) + p.cpu - start.get(p.key, 0.0)
    rest = total - sum(by_role.values())
    if rest > 0.05:  # False for NaN
        by_role["ended in the phase"] = rest
    return by_role


def _roles(trees: list[list[ProcStat]]) -> list[list[str]]:
    return [[p.role for p in tree] for tree in trees]


async def run_phase(
    load: Load,
    setup: Setup,
    redis: RedisServer,
    workdir: Path,
    phase_index: int,
    client: str = "raw",
) -> PhaseResult:
    await redis.flush()
    asks = plan(load, phase_index)
    async with TieredSlack() as slack, TimedInference() as inference:
        for ask in asks:
            inference.expect(ask.question, ask.script)
            slack.expect_answer(ask.channel, ask.thread_ts, ask.script.text)
        endpoints = BotEndpoints(slack.base_url, inference.base_url, redis.url)
        names = [f"{load.name}-{setup.key}-bot{n}" for n in range(setup.bots)]
        bots = [BotProcess(name, endpoints, workdir, setup.workers) for name in names]
        try:
            await asyncio.gather(*(bot.start() for bot in bots))
            await asyncio.gather(*(bot.quiet() for bot in bots))
            for method, (per_minute, burst) in SLACK_TIERS.items():
                slack.limit(method, per_minute, burst)
            for method, (per_minute, burst) in SLACK_CHANNEL_TIERS.items():
                slack.limit_per_channel(method, per_minute, burst)
            urls = [bot.url for bot in bots]
            sending = Sender(deliveries(asks, urls, load.duplicates), SEND_CONCURRENCY, client)
            async with (
                sending as sender,
                _sampling(bots, inference) as sampler,
                _loop_lag() as lag,
            ):
                before = _snapshot(bots)
                started = time.monotonic()
                await sender.go()
                acks = await sender.acks()
                settled = await _settle(redis.url, slack, asks, started + load.window)
                seconds = time.monotonic() - started
                after = _snapshot(bots)
                sampler.sample()
        finally:
            await asyncio.gather(*(bot.stop() for bot in bots))
        log: Counter[str] = Counter()
        for bot in bots:
            log.update(bot.log_summary())
        results = outcomes(slack, inference, asks, burst_at=started, ended_at=started + seconds)
        # A web process gone at the end took its tree's CPU figures with it: no figure then.
        cpu = _cpu(after) - _cpu(before) if all(after) else math.nan
        at_end = {p.key for tree in after for p in tree}
        ended = [p for p in sampler.seen.values() if p.key not in at_end]
        return PhaseResult(
            load=load,
            setup=setup,
            acks=acks,
            outcomes=results,
            duplicate_attempts=[r.attempts for r in results[: load.duplicates]],
            calls=method_counts(slack),
            rate_limited=dict(slack.rate_limited),
            cpu_seconds=cpu,
            cpu_by_role=_cpu_by_role(before, after, cpu),
            tokens=inference.tokens_sent(),
            memory_at_peak=sampler.at_peak,
            memory_end=[
                [ProcMemory(p.role, p.rss_kb, p.hwm_kb) for p in tree]
                + [ProcMemory(p.role, p.rss_kb, p.hwm_kb, True) for p in ended if p.key in ids]
                for tree, ids in zip(after, sampler.trees, strict=True)
            ],
            processes_at_burst=_roles(before),
            processes_at_end=_roles(after),
            processes_ended=len(ended),
            web_exits=[bot.exited for bot in bots],
            peak_open=inference.peak_open,
            settled=settled,
            seconds=seconds,
            loop_lag_p99_ms=lag.p99_ms(),
            bot_log=log,
        )


async def _settle(redis_url: str, slack: TieredSlack, asks: list[Ask], deadline: float) -> bool:
    """Wait until every answer is done, or ``deadline`` (monotonic) passes.

    Done: the answer is in the thread's history (the bot remembers it last), or the question
    was taken and its thread is idle (no lock, empty queue: the bot gave up on it) while no
    work is pending anywhere (see ``_nothing_pending``); and Slack shows it all (see
    ``_delivered``).
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
            done = [
                answered or (taken and not locked and not queued)
                for answered, taken, locked, queued in zip(*[iter(replies)] * 4, strict=True)
            ]
            if (
                all(done)
                and (all(replies[::4]) or await _nothing_pending(client))
                and _delivered(slack, asks)
            ):
                return True
            await asyncio.sleep(0.25)
        return False
    finally:
        await client.aclose()


def _delivered(slack: TieredSlack, asks: list[Ask]) -> bool:
    """Every thread reads as its whole answer, or the bot has made no call that changes a
    thread for ``QUIET_SECONDS``: an answer the bot remembered before its last text reached
    Slack is still being delivered, so the phase does not end on it (that would cut its
    "answer complete" figure short); one it gave up on never completes, and the quiet
    period ends the wait for it."""
    if all((ask.channel, ask.thread_ts) in slack.completed for ask in asks):
        return True
    return time.monotonic() - slack.last_body_call >= QUIET_SECONDS


async def _nothing_pending(client: aioredis.Redis) -> bool:
    """No process has work registered (``keys.work``), every list of the bot's keys (thread
    histories aside) is empty and no stream consumer group has entries pending or unread: a
    question handed from a web process to a worker through a queue, not yet picked up, is
    not mistaken for one the bot gave up on."""
    async for name in client.scan_iter(match=keys.work_pattern(), count=500):
        if await client.hlen(name):
            return False
    history = (":" + keys.history("").rsplit(":", 1)[-1]).encode()  # b":history"
    async for name in client.scan_iter(match=f"{keys.PREFIX}*", count=500, _type="list"):
        if not name.endswith(history) and await client.llen(name):
            return False
    async for name in client.scan_iter(match=f"{keys.PREFIX}*", count=500, _type="stream"):
        for group in await client.xinfo_groups(name):
            # lag (entries not yet read by the group) is unknown after deletions: then any
            # entry left in the stream counts as pending.
            lag = group.get("lag")
            if group.get("pending") or lag or (lag is None and await client.xlen(name)):
                return False
    return True


@dataclass
class _Sampler:
    bots: list[BotProcess]
    inference: TimedInference
    best_open: int = -1
    at_peak: list[list[ProcMemory]] = field(default_factory=list)
    best_rss: int = 0
    # Every OS process seen, by (pid, starttime), as last sampled; and those of each bot.
    seen: dict[tuple[int, int], ProcStat] = field(default_factory=dict)
    trees: list[set[tuple[int, int]]] = field(default_factory=list)

    def sample(self) -> None:
        trees = _snapshot(self.bots)
        if not self.trees:
            self.trees = [set() for _ in self.bots]
        for ids, tree in zip(self.trees, trees, strict=True):
            for p in tree:
                self.seen[p.key] = p
                ids.add(p.key)
        open_now = self.inference.open_streams
        if open_now < self.best_open:
            return
        rss = sum(p.rss_kb for tree in trees for p in tree)
        if open_now > self.best_open or rss > self.best_rss:
            self.best_open, self.best_rss = open_now, rss
            self.at_peak = [[ProcMemory(p.role, p.rss_kb, p.hwm_kb) for p in t] for t in trees]


@contextlib.asynccontextmanager
async def _sampling(bots: list[BotProcess], inference: TimedInference) -> AsyncIterator[_Sampler]:
    """Record the RSS of every OS process of every bot whenever the number of open model
    streams is at its highest; note every process seen (for those that end mid-phase)."""
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
