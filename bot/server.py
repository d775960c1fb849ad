"""The HTTP face of the bot: ``POST /slack/events`` and ``GET /healthz`` on aiohttp.

Every request passes the gate in ``bot.handlers.intake`` first: a wrong signature or
timestamp gets 401, a malformed body 400, each with one log line and never a 500. Message
events, which come in bursts, take the fast path there; Bolt verifies every other request's
signature again, acknowledges at once and runs listeners after the response.
"""

from __future__ import annotations

import logging

from aiohttp import web
from slack_bolt.adapter.aiohttp import to_aiohttp_response
from slack_bolt.request.async_request import AsyncBoltRequest

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
    # No lingering: a body left unread (one that failed to decode) is not read again after
    # the response, where its error would be logged as an unhandled exception; the
    # connection is closed instead. Slack's requests are always read whole.
    app = web.Application(handler_args={"lingering_time": 0})
    app[RUNTIME] = runtime
    if workers is not None:
        app[WORKERS] = workers
    if slack_events_route:
        app.router.add_post("/slack/events", slack_events)
    app.router.add_get("/healthz", healthz)
    return app


async def slack_events(request: web.Request) -> web.Response:
    runtime = request.app[RUNTIME]
    try:
        raw = await request.read()
    except web.RequestPayloadError as exc:  # e.g. a Content-Encoding its bytes do not match
        log.warning("refused a request to /slack/events (400): unreadable body (%s)", exc)
        return web.Response(status=400)
    admitted = await runtime.intake.http(request.headers, raw)
    if isinstance(admitted, int):
        return web.Response(status=admitted)
    try:
        # The text the gate decoded, not ``request.text()``: a charset in Content-Type must
        # not make Bolt read (and verify) other characters than were signed.
        bolt_request = AsyncBoltRequest(
            body=admitted.text,
            query=request.query_string,
            headers=request.headers,  # type: ignore[arg-type]
        )
    except (LookupError, TypeError, ValueError, AttributeError) as exc:
        # Bolt reads a few fields the gate's shape check does not cover.
        log.warning("refused a request to /slack/events (400): Bolt cannot read it (%r)", exc)
        return web.Response(status=400)
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
