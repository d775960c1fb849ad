"""``python -m bench.sender``: sends one phase's signed events from its own process.

The fakes run in the bench process's event loop, which gets busy during a burst; timing the
acks there would add that loop's lag to every ack. This process has its own loop and HTTP
client and does nothing else. Protocol, one JSON line each way per step, on stdin/stdout:

1. the bench writes ``{"concurrency": N, "client": "raw" | "aiohttp" | "httpx",
   "deliveries": [{"url", "body", "retry"}, ...]}``;
2. the sender prepares and writes ``ready``; the bench writes ``go`` when the burst starts;
3. the sender starts every delivery at once (at most N in flight, over at most N keep-alive
   connections) and, when all are answered, writes ``{"results": [...], "loop_lag_p99_ms":
   x}``: per delivery, in order, ``[seconds or null, HTTP status or null, error or null]``.

An ack's latency runs from handing the signed request to the client until the whole
response has arrived; waiting for a free slot is not counted.

The client is ``raw`` by default: HTTP/1.1 written and read on plain keep-alive sockets,
the least client work per request, so that on a 2-core machine shared with the bot the
figure is mostly the server's. aiohttp's client (``--client aiohttp``) adds ~20 ms at p99
against a do-nothing server; httpx (what the bench used first) costs several milliseconds
of CPU per request at 50 in flight, and its acks read ~100 ms p50 and ~0.5-0.8 s p99
against a do-nothing server. The bench measures that floor each run.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import httpx
from slack_sdk.signature import SignatureVerifier

from bench.rig import SIGNING_SECRET

RETRY_HEADERS = {"x-slack-retry-num": "1", "x-slack-retry-reason": "http_timeout"}
LAG_TICK = 0.05
TIMEOUT = 30.0
CLIENTS = ("raw", "aiohttp", "httpx")

Result = tuple[float | None, int | None, str | None]
Post = Callable[[str, str, dict[str, str]], Awaitable[int]]  # url, body, headers -> status


@contextlib.asynccontextmanager
async def _client(kind: str, concurrency: int) -> AsyncIterator[Post]:
    """A ``post`` for the chosen client, with at most ``concurrency`` keep-alive connections;
    it returns once the whole response has been read."""
    if kind == "httpx":
        limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
        async with httpx.AsyncClient(limits=limits, timeout=TIMEOUT) as http:

            async def post_httpx(url: str, body: str, headers: dict[str, str]) -> int:
                response = await http.post(url, content=body, headers=headers)
                return response.status_code

            yield post_httpx
        return
    if kind == "raw":
        pool = _RawPool()
        try:
            yield pool.post
        finally:
            pool.close()
        return
    connector = aiohttp.TCPConnector(limit=concurrency, limit_per_host=concurrency)
    timeout = aiohttp.ClientTimeout(total=TIMEOUT)
    async with aiohttp.ClientSession(connector=connector, timeout=timeout) as session:

        async def post_aiohttp(url: str, body: str, headers: dict[str, str]) -> int:
            async with session.post(url, data=body.encode(), headers=headers) as response:
                await response.read()
                return response.status

        yield post_aiohttp


class _RawPool:
    """HTTP/1.1 over plain keep-alive sockets, one request at a time per connection: the
    least client-side work per request, so the figure is the server's. Connections open on
    first use, like aiohttp's; responses must carry Content-Length (aiohttp's do)."""

    def __init__(self) -> None:
        self._idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self._all: list[asyncio.StreamWriter] = []

    async def post(self, url: str, body: str, headers: dict[str, str]) -> int:
        parts = urlsplit(url)
        host, port = parts.hostname or "127.0.0.1", parts.port or 80
        if self._idle:
            reader, writer = self._idle.pop()
        else:
            reader, writer = await asyncio.open_connection(host, port)
            self._all.append(writer)
        payload = body.encode()
        lines = [f"POST {parts.path or '/'} HTTP/1.1", f"Host: {host}:{port}"]
        lines += [f"{name}: {value}" for name, value in headers.items()]
        lines.append(f"Content-Length: {len(payload)}")
        writer.write(("\r\n".join(lines) + "\r\n\r\n").encode() + payload)
        head = await reader.readuntil(b"\r\n\r\n")
        status = int(head.split(b" ", 2)[1])
        length, close = 0, False
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
            elif name.strip().lower() == b"connection" and b"close" in value.lower():
                close = True
        if length:
            await reader.readexactly(length)
        if close:
            writer.close()
        else:
            self._idle.append((reader, writer))
        return status

    def close(self) -> None:
        for writer in self._all:
            writer.close()


async def burst(
    deliveries: list[dict[str, Any]], concurrency: int, kind: str = "raw"
) -> tuple[list[Result], float]:
    results: list[Result] = [(None, None, "not sent")] * len(deliveries)
    slots = asyncio.Semaphore(concurrency)
    verifier = SignatureVerifier(SIGNING_SECRET)
    async with _client(kind, concurrency) as post:

        async def send(index: int, delivery: dict[str, Any]) -> None:
            body = str(delivery["body"])
            async with slots:
                ts = str(int(time.time()))
                signature = verifier.generate_signature(timestamp=ts, body=body)
                headers = {
                    "content-type": "application/json",
                    "x-slack-request-timestamp": ts,
                    "x-slack-signature": signature or "",
                }
                if delivery.get("retry"):
                    headers.update(RETRY_HEADERS)
                started = time.perf_counter()
                try:
                    status = await post(f"{delivery['url']}/slack/events", body, headers)
                except (httpx.HTTPError, aiohttp.ClientError, OSError, ValueError) as exc:
                    results[index] = (None, None, f"{type(exc).__name__}: {exc}")
                    return
                results[index] = (time.perf_counter() - started, status, None)

        lags: list[float] = []

        async def gauge() -> None:
            while True:
                before = time.monotonic()
                await asyncio.sleep(LAG_TICK)
                lags.append(max(0.0, time.monotonic() - before - LAG_TICK))

        task = asyncio.create_task(gauge())
        try:
            await asyncio.gather(*(send(i, d) for i, d in enumerate(deliveries)))
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
    lags.sort()
    lag_p99 = lags[int(0.99 * (len(lags) - 1))] * 1000 if lags else 0.0
    return results, lag_p99


def main() -> int:
    order = json.loads(sys.stdin.readline())
    deliveries: list[dict[str, Any]] = order["deliveries"]
    concurrency = int(order["concurrency"])
    kind = str(order.get("client", "raw"))
    print("ready", flush=True)
    if sys.stdin.readline().strip() != "go":
        return 1
    results, lag_p99 = asyncio.run(burst(deliveries, concurrency, kind))
    print(json.dumps({"results": results, "loop_lag_p99_ms": lag_p99}), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
