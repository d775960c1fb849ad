"""Slack event deliveries, and the process that sends them signed, the way Slack sends them,
with the time each ack took (bench/sender.py)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

from bench.rig import ROOT

TEAM = "T0TEAM"


def channel_name(index: int) -> str:
    return f"C0BENCH{index:03d}"


USER = "U0ALICE"
BOT_USER = "U0BOT"


@dataclass(frozen=True)
class Delivery:
    """One POST to one bot: an app_mention event, maybe a retry of an earlier one."""

    url: str
    body: str
    retry: bool = False


@dataclass
class Acks:
    seconds: list[float] = field(default_factory=list)  # primary deliveries only
    failures: list[str] = field(default_factory=list)
    sender_lag_p99_ms: float = 0.0  # the sender process's own event-loop lag, a noise gauge


def mention_body(
    event_id: str, channel: str, thread_ts: str, question: str, user: str = USER
) -> str:
    event = {
        "type": "app_mention",
        "user": user,
        "text": f"<@{BOT_USER}> {question}",
        "ts": thread_ts,
        "channel": channel,
        "team": TEAM,
        "event_ts": thread_ts,
    }
    return json.dumps(
        {
            "token": "legacy",
            "team_id": TEAM,
            "api_app_id": "A0BENCH",
            "type": "event_callback",
            "event_id": event_id,
            "event_time": int(time.time()),
            "event": event,
        }
    )


class Sender:
    """``python -m bench.sender`` in its own process, holding one phase's deliveries.

    Entering starts it and waits until it is ready; ``go()`` starts the burst; ``acks()``
    waits for every delivery's answer. Leaving kills it if it is still there.
    """

    def __init__(
        self, deliveries: Sequence[Delivery], concurrency: int, client: str = "raw"
    ) -> None:
        self._deliveries = list(deliveries)
        self._concurrency = concurrency
        self._client = client
        self._proc: asyncio.subprocess.Process | None = None

    async def __aenter__(self) -> Sender:
        self._proc = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bench.sender",
            cwd=ROOT,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            limit=1 << 24,
        )
        order = {
            "concurrency": self._concurrency,
            "client": self._client,
            "deliveries": [
                {"url": d.url, "body": d.body, "retry": d.retry} for d in self._deliveries
            ],
        }
        await self._write(json.dumps(order))
        if await self._line() != "ready":
            raise RuntimeError("the sender process did not start")
        return self

    async def __aexit__(self, *exc: object) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()

    async def go(self) -> None:
        await self._write("go")

    async def acks(self) -> Acks:
        reply = json.loads(await self._line())
        acks = Acks(sender_lag_p99_ms=float(reply["loop_lag_p99_ms"]))
        for delivery, (seconds, status, error) in zip(
            self._deliveries, reply["results"], strict=True
        ):
            if error is not None:
                acks.failures.append(str(error))
            elif status != 200:
                acks.failures.append(f"HTTP {status}")
            elif not delivery.retry:
                acks.seconds.append(float(seconds))
        return acks

    def _running(self) -> asyncio.subprocess.Process:
        if self._proc is None:
            raise RuntimeError("the sender process is not running")
        return self._proc

    async def _write(self, line: str) -> None:
        stdin = self._running().stdin
        if stdin is None:
            raise RuntimeError("the sender process has no stdin")
        stdin.write(line.encode() + b"\n")
        await stdin.drain()

    async def _line(self) -> str:
        proc = self._running()
        line = await proc.stdout.readline() if proc.stdout is not None else b""
        if not line:
            raise RuntimeError(f"the sender process ended early (exit {await proc.wait()})")
        return line.decode().strip()
