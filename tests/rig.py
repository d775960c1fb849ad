"""The real bot in this process, pointed at the fakes, and a way to talk to it as Slack does.

Every scenario drives the bot the way Slack does: signed HTTP requests to the real
``/slack/events`` endpoint of an aiohttp server on loopback, with the bot's Web API calls
going to ``FakeSlack`` and its model calls to ``FakeInference``.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import httpx
from aiohttp import web
from slack_sdk.signature import SignatureVerifier

from bot.app import Runtime, build_runtime
from bot.config import load_settings
from bot.server import web_app
from tests.fakes import FakeInference, FakeSlack
from tests.fakes.loopback import bound_port

SIGNING_SECRET = "test-signing-secret"
NO_RUNBOOKS = Path(__file__).parent / "data" / "no-runbooks.toml"
BOT_TOKEN = "xoxb-test"
INFERENCE_KEY = "inf-test"


@dataclass
class BotUnderTest:
    """The real bot, served on loopback, and a way to talk to it as Slack does."""

    runtime: Runtime
    url: str
    http: httpx.AsyncClient
    _events: int = field(default=0)

    async def post(
        self,
        body: str,
        content_type: str,
        *,
        signed: bool = True,
        timestamp: int | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        ts = str(timestamp if timestamp is not None else int(time.time()))
        sent = {"content-type": content_type, "x-slack-request-timestamp": ts}
        if signed:
            verifier = SignatureVerifier(SIGNING_SECRET)
            sent["x-slack-signature"] = verifier.generate_signature(timestamp=ts, body=body) or ""
        sent.update(headers or {})
        return await self.http.post(f"{self.url}/slack/events", content=body, headers=sent)

    async def event(
        self,
        event: dict[str, Any],
        *,
        event_id: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> httpx.Response:
        self._events += 1
        body = {
            "token": "legacy",
            "team_id": "T0TEAM",
            "api_app_id": "A0APP",
            "type": "event_callback",
            "event_id": event_id or f"Ev{self._events:08d}",
            "event_time": int(time.time()),
            "event": event,
        }
        return await self.post(json.dumps(body), "application/json", headers=headers)

    async def command(self, **fields: str) -> httpx.Response:
        return await self.post(urlencode(fields), "application/x-www-form-urlencoded")

    async def action(self, payload: dict[str, Any]) -> httpx.Response:
        body = urlencode({"payload": json.dumps(payload)})
        return await self.post(body, "application/x-www-form-urlencoded")

    async def idle(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        """Wait until the bot has no work in flight: every request handled and all it
        started in the background (answers, runs, card updates) done, as a graceful
        shutdown waits for. After that, what did not happen will not happen."""
        if not await self.runtime.inflight.drain(grace=timeout):
            count = self.runtime.inflight.count
            raise AssertionError(f"the bot still had {count} pieces of work after {timeout}s")


def connections(
    slack: FakeSlack, inference: FakeInference, redis_url: str | None
) -> dict[str, Any]:
    """The settings that point the bot at the fakes and at Redis: URLs and credentials."""
    return {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": slack.base_url,
        "inference_url": inference.base_url,
        "inference_key": INFERENCE_KEY,
        "redis_url": redis_url,
    }


def settings_for(
    slack: FakeSlack, inference: FakeInference, redis_url: str | None, **overrides: Any
) -> Any:
    values: dict[str, Any] = {
        **connections(slack, inference, redis_url),
        "copilot_update_interval": 0.05,
        "copilot_idle_timeout": 2.0,
        # No runbooks unless a test brings its own file.
        "runbooks_file": str(NO_RUNBOOKS),
        "_env_file": None,
    }
    values.update(overrides)
    return load_settings(**values)


class serve:
    """The web side: ``announce=True`` is a web process with workers, which only queues."""

    def __init__(self, settings: Any, *, announce: bool = False) -> None:
        self._settings = settings
        self._announce = announce

    async def __aenter__(self) -> BotUnderTest:
        self._runtime = await build_runtime(self._settings, announce=self._announce)
        self._runner = web.AppRunner(web_app(self._runtime))
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self._http = httpx.AsyncClient(timeout=10)
        return BotUnderTest(self._runtime, f"http://127.0.0.1:{bound_port(site)}", self._http)

    async def __aexit__(self, *exc: object) -> None:
        await self._http.aclose()
        await self._runner.cleanup()
        await asyncio.sleep(0.01)
        await self._runtime.inflight.drain(grace=5)
        await self._runtime.aclose()


class working:
    """A worker (``python -m bot worker``) in this process, until the block ends."""

    def __init__(self, settings: Any, **options: Any) -> None:
        self._settings = settings
        self._options = {"capacity": settings.copilot_concurrent_answers, **options}

    async def __aenter__(self) -> Runtime:
        from bot.worker import Worker

        self._runtime = await build_runtime(self._settings)
        runtime = self._runtime
        worker = Worker(
            runtime.queue, runtime.scheduler, runtime.runs, runtime.tasks, **self._options
        )
        self._stop = asyncio.Event()
        self._task = asyncio.create_task(worker.run(self._stop))
        return runtime

    async def __aexit__(self, *exc: object) -> None:
        self._stop.set()
        await self._task
        await self._runtime.inflight.drain(grace=5)
        await self._runtime.aclose()
