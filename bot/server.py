"""The HTTP face of the bot: ``POST /slack/events`` and ``GET /healthz`` on aiohttp.

Message events, which come in bursts, take the fast path in ``bot.handlers.intake``; Bolt
verifies every other request's signature and timestamp (401 otherwise), acknowledges at
once and runs listeners after the response.
"""

from __future__ import annotations

import logging

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response, to_bolt_request

from bot.app import Runtime
from bot.errors import StateError
from bot.supervisor import WorkerProcesses

log = logging.getLogger(__name__)

RUNTIME = web.AppKey("runtime", Runtime)
WORKERS = web.AppKey("workers", WorkerProcesses)


def web_app(
    runtime: Runtime,
    *,
    slack_events_route: bool = True,
    workers: WorkerProcesses | None = None,
) -> web.Application:
    """The HTTP app. In Socket Mode only ``/healthz`` is served: Bolt does not verify
    signatures there, so ``/slack/events`` must not be reachable over HTTP."""
    app = web.Application()
    app[RUNTIME] = runtime
    if workers is not None:
        app[WORKERS] = workers
    if slack_events_route:
        app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    return app


async def slack_events(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    status = await runtime.intake.http(request.headers, await request.read())
    if status is not None:
        return web.Response(status=status)
    bolt_request = await to_bolt_request(request)
    bolt_response = await runtime.bolt.async_dispatch(bolt_request)
    return await to_aiohttp_response(bolt_response)


async def healthz(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    body: dict[str, object] = {"status": "ok", "redis": "ok"}
    workers = request.app.get(WORKERS)
    if workers is not None:
        # Operators' view: a dyno whose workers keep dying still acknowledges, but answers
        # nothing until one is back (each restart is also logged).
        body["workers"] = len(workers.pids)
    try:
        await runtime.store.ping()
    except StateError:
        body.update(status="degraded", redis="unreachable")
        return web.json_response(body, status=503)
    return web.json_response(body)
