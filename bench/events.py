"""Signed Slack event deliveries, sent the way Slack sends them, with the time each ack took."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import httpx
from slack_sdk.signature import SignatureVerifier

from bench.rig import SIGNING_SECRET

TEAM = "T0TEAM"


def channel_name(index: int) -> str:
    return f"C0BENCH{index:03d}"


USER = "U0ALICE"
BOT_USER = "U0BOT"
RETRY_HEADERS = {"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"}


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


def mention_body(event_id: str, channel: str, thread_ts: str, question: str) -> str:
    event = {
        "type": "app_mention",
        "user": USER,
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


async def send_burst(deliveries: Sequence[Delivery], concurrency: int) -> Acks:
    """Start every delivery at once, at most ``concurrency`` in flight (one connection each).

    An ack's latency runs from handing the signed request to httpx until the whole response
    has arrived; waiting for a free slot is not counted.
    """
    acks = Acks()
    slots = asyncio.Semaphore(concurrency)
    verifier = SignatureVerifier(SIGNING_SECRET)
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(limits=limits, timeout=30.0) as http:

        async def send(delivery: Delivery) -> None:
            async with slots:
                ts = str(int(time.time()))
                signature = verifier.generate_signature(timestamp=ts, body=delivery.body)
                headers = {
                    "content-type": "application/json",
                    "x-slack-request-timestamp": ts,
                    "x-slack-signature": signature or "",
                }
                if delivery.retry:
                    headers.update(RETRY_HEADERS)
                started = time.perf_counter()
                try:
                    response = await http.post(
                        f"{delivery.url}/slack/events", content=delivery.body, headers=headers
                    )
                except httpx.HTTPError as exc:
                    acks.failures.append(f"{type(exc).__name__}: {exc}")
                    return
                elapsed = time.perf_counter() - started
                if response.status_code != 200:
                    acks.failures.append(f"HTTP {response.status_code}")
                elif not delivery.retry:
                    acks.seconds.append(elapsed)

        await asyncio.gather(*(send(d) for d in deliveries))
    return acks
