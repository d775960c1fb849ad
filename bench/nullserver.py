"""``python -m bench.nullserver PORT``: answers every ``POST /slack/events`` with an empty 200
once the body is read, doing nothing else (aiohttp, like the bot's server). Sending a phase's
burst to it measures the harness's own share of an ack: the floor under the bot's figures."""

from __future__ import annotations

import asyncio
import sys

from aiohttp import web


async def _ok(request: web.Request) -> web.Response:
    await request.read()
    return web.Response()


async def serve(port: int) -> None:
    app = web.Application()
    app.router.add_post("/slack/events", _ok)
    app.router.add_get("/healthz", _ok)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(int(sys.argv[1])))
