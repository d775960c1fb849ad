"""Command line: ``python -m bot`` serves; ``shell`` and ``check`` are the local tools.

Start-up problems end the process with one line on stderr and exit code 2: no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys

from aiohttp import web

from bot.app import Runtime, build_runtime
from bot.config import Settings, load_settings
from bot.errors import ConfigError
from bot.server import web_app

log = logging.getLogger("bot")

SHUTDOWN_GRACE_SECONDS = 25.0


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    try:
        settings = load_settings()
        settings.require(args.command)
        return asyncio.run(_serve(settings))
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Ops copilot for Slack")
    parser.add_argument("command", nargs="?", default="serve", choices=["serve"])
    return parser


async def _serve(settings: Settings) -> int:
    runtime = await build_runtime(settings)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    try:
        if settings.socket_mode:
            await _socket_mode(runtime, stop)
        else:
            await _http_mode(runtime, stop)
    finally:
        # Heroku sends SIGKILL 30 s after SIGTERM: let answers in flight finish before that.
        if not await runtime.inflight.drain(grace=SHUTDOWN_GRACE_SECONDS):
            log.warning("shutting down with %d answers unfinished", runtime.inflight.count)
        await runtime.aclose()
    return 0


async def _http_mode(runtime: Runtime, stop: asyncio.Event) -> None:
    runner = web.AppRunner(web_app(runtime), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", runtime.settings.port).start()
    log.info("serving HTTP on port %d (POST /slack/events, GET /healthz)", runtime.settings.port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


async def _socket_mode(runtime: Runtime, stop: asyncio.Event) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    app_token = runtime.settings.slack_app_token
    assert app_token is not None
    handler = AsyncSocketModeHandler(
        runtime.bolt, app_token.get_secret_value(), web_client=runtime.slack
    )
    await handler.connect_async()  # type: ignore[no-untyped-call]
    log.info("connected to Slack in Socket Mode")
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await handler.close_async()  # type: ignore[no-untyped-call]


if __name__ == "__main__":
    sys.exit(main())
