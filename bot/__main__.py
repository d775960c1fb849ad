"""Command line: ``python -m bot`` serves (``worker`` answers for it); ``check``,
``manifest`` and ``shell`` are local tools.

Start-up problems end the process with one line on stderr and exit code 2: no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Callable

from aiohttp import web

from bot import logs, manifest
from bot.app import Runtime, build_runtime
from bot.config import Settings, load_settings
from bot.errors import ConfigError
from bot.runbooks import load_catalog
from bot.server import web_app
from bot.supervisor import WorkerProcesses
from bot.worker import Worker, watch_parent

log = logging.getLogger("bot")

WORKER_NICENESS = 5


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    command = args.command or "serve"
    if command != "serve":
        # The local tools keep the terminal for their output: only warnings, in plain text.
        logs.configure(logging.WARNING, json_lines=False)
    try:
        return _COMMANDS[command](args)
    except ConfigError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print(file=sys.stderr)
        return 130


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description="Ops copilot for Slack")
    commands = parser.add_subparsers(dest="command", metavar="{serve,worker,check,manifest,shell}")
    commands.add_parser("serve", help="serve Slack (the default): HTTP on $PORT, or Socket Mode")
    worker_cmd = commands.add_parser(
        "worker",
        help="answer the questions and run the approved runs web processes queue (needs REDIS_URL)",
    )
    # Set by a web process for the workers it starts, so they end with it.
    worker_cmd.add_argument("--parent", type=int, help=argparse.SUPPRESS)
    # Which of its workers this is: with DYNO=web.1, the worker is web.1/worker-0.
    worker_cmd.add_argument("--slot", type=int, help=argparse.SUPPRESS)
    commands.add_parser(
        "check", help="validate settings and the runbooks file; ping Slack, Redis and Inference"
    )
    manifest_cmd = commands.add_parser("manifest", help="print the Slack app manifest (JSON)")
    where = manifest_cmd.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="the app's public address, e.g. https://APP.herokuapp.com")
    where.add_argument("--socket", action="store_true", help="for Socket Mode: no request URLs")
    manifest_cmd.add_argument("--name", default=manifest.DEFAULT_NAME, help="the app's name")
    shell_cmd = commands.add_parser("shell", help="talk to the bot in this terminal")
    shell_cmd.add_argument("--user", default="U0SHELL", help="who you are (a Slack user id)")
    shell_cmd.add_argument("--channel", help="the channel /run is typed in")
    return parser


def _serve_command(_: argparse.Namespace) -> int:
    settings = load_settings()
    # The server logs its routine work as JSON lines, for Heroku's log drains to query.
    logs.configure(logging.INFO, secrets=logs.secrets_of(settings))
    settings.require("serve")
    return asyncio.run(_serve(settings))


def _worker_command(args: argparse.Namespace) -> int:
    if args.parent is not None:
        # Beside a web process on one dyno, answering yields the CPU to acknowledging Slack:
        # an ack is due within 3 s, while an answer is paced by Slack's budget anyway.
        os.nice(WORKER_NICENESS)
    settings = load_settings()
    logs.configure(logging.INFO, secrets=logs.secrets_of(settings))
    settings.require("worker")
    return asyncio.run(_work(settings, args.parent, args.slot))


def _check_command(_: argparse.Namespace) -> int:
    from bot import check

    return asyncio.run(check.run())


def _manifest_command(args: argparse.Namespace) -> int:
    catalog = load_catalog(load_settings().runbooks_file)
    built = manifest.build(catalog, url=args.url, socket=args.socket, name=args.name)
    print(manifest.render(built), end="")
    return 0


def _shell_command(args: argparse.Namespace) -> int:
    from bot.shell import run_shell

    return asyncio.run(run_shell(user=args.user, channel=args.channel))


_COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": _serve_command,
    "worker": _worker_command,
    "check": _check_command,
    "manifest": _manifest_command,
    "shell": _shell_command,
}


async def _serve(settings: Settings) -> int:
    count = settings.copilot_workers if settings.redis_url is not None else 0
    if settings.copilot_workers and not count:
        log.warning("no REDIS_URL: answering in this process, without worker processes")
    runtime = await build_runtime(settings, announce=count > 0)
    workers = WorkerProcesses(count)
    workers.start()
    stop = _stop_on_signals()
    try:
        shown = workers if count else None
        if settings.socket_mode:
            await _socket_mode(runtime, stop, shown)
        else:
            await _http_mode(runtime, stop, shown)
    finally:
        # Heroku sends SIGKILL 30 s after SIGTERM: finish what runs, report what can't.
        grace = settings.copilot_shutdown_grace
        await asyncio.gather(runtime.shutdown(), workers.stop(grace + 2))
    return 0


async def _work(settings: Settings, parent: int | None, slot: int | None) -> int:
    name = f"{settings.dyno}/worker-{slot}" if settings.dyno and slot is not None else None
    runtime = await build_runtime(settings, name=name)
    worker = Worker(
        runtime.queue,
        runtime.scheduler,
        runtime.runs,
        runtime.tasks,
        capacity=settings.copilot_concurrent_answers,
    )
    log.info("worker ready: answering queued questions and running approved runs")
    stop = _stop_on_signals()
    # Started by a web process: when it is gone, stop as at SIGTERM rather than linger.
    watcher = asyncio.create_task(watch_parent(parent, stop)) if parent is not None else None
    try:
        await worker.run(stop)
    finally:
        if watcher is not None:
            watcher.cancel()
        await runtime.shutdown()
    return 0


def _stop_on_signals() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    return stop


async def _http_mode(
    runtime: Runtime, stop: asyncio.Event, workers: WorkerProcesses | None
) -> None:
    runner = web.AppRunner(web_app(runtime, workers=workers), access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", runtime.settings.port).start()
    log.info("serving HTTP on port %d (POST /slack/events, GET /healthz)", runtime.settings.port)
    try:
        await stop.wait()
    finally:
        await runner.cleanup()


async def _socket_mode(
    runtime: Runtime, stop: asyncio.Event, workers: WorkerProcesses | None
) -> None:
    from slack_bolt.adapter.socket_mode.async_handler import AsyncSocketModeHandler

    app_token = runtime.settings.slack_app_token
    assert app_token is not None
    handler = AsyncSocketModeHandler(
        runtime.bolt, app_token.get_secret_value(), web_client=runtime.slack
    )
    await handler.connect_async()  # type: ignore[no-untyped-call]
    log.info("connected to Slack in Socket Mode")
    # A Heroku web dyno must bind $PORT within 60 s, Socket Mode or not.
    serve_health = "port" in runtime.settings.model_fields_set
    health = await _health_only(runtime, workers) if serve_health else None
    try:
        await stop.wait()
    finally:
        with contextlib.suppress(Exception):
            await handler.close_async()  # type: ignore[no-untyped-call]
        if health is not None:
            await health.cleanup()


async def _health_only(runtime: Runtime, workers: WorkerProcesses | None) -> web.AppRunner:
    app = web_app(runtime, slack_events_route=False, workers=workers)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "0.0.0.0", runtime.settings.port).start()
    log.info("serving GET /healthz on port %d", runtime.settings.port)
    return runner


if __name__ == "__main__":
    sys.exit(main())
