"""Building the running bot: settings in, clients and services wired together.

This is the one place that creates clients; everything else receives them. Tests build the
same ``Runtime`` pointed at fake servers on loopback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import httpx
import redis.asyncio as redis
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from bot.approvals import Approvers
from bot.ask import AskService, AskSettings
from bot.config import Settings
from bot.errors import BotError, ConfigError, SlackError, StateError
from bot.inference import AgentsClient, InferenceClient
from bot.inflight import InFlight
from bot.proposals import Copilot
from bot.recovery import Recovery
from bot.runbooks import Catalog, load_catalog
from bot.runs import RunService
from bot.slack import commands, listeners
from bot.slack.budget import BudgetRetryHandler, SlackBudget
from bot.slack.calls import slack_errors, web_client
from bot.slack.events import Identity
from bot.slack.reply import Replier
from bot.state import ThreadStore, connect
from bot.state.requests import RequestStore
from bot.state.work import WorkRegistry

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    identity: Identity
    bolt: AsyncApp
    slack: AsyncWebClient
    redis: redis.Redis
    http: httpx.AsyncClient
    store: ThreadStore
    ask: AskService
    runs: RunService
    inflight: InFlight
    work: WorkRegistry
    recovery: Recovery
    background: list[asyncio.Task[None]] = field(default_factory=list)

    def start_background(self) -> None:
        """The heartbeat, and sweeps for expired requests and for work of dead processes."""
        self.background += [
            asyncio.create_task(_every(self.settings.copilot_heartbeat_interval, self._beat)),
            asyncio.create_task(_every(self.settings.copilot_sweep_interval, self._sweep)),
        ]

    async def _beat(self) -> None:
        await self.work.heartbeat()

    async def _sweep(self) -> None:
        await self.runs.sweep_expired()
        await self.recovery.sweep()

    async def shutdown(self) -> None:
        """Stop: let work in flight finish within the grace period, report what did not."""
        if not await self.inflight.drain(grace=self.settings.copilot_shutdown_grace):
            log.warning("shutting down with %d requests unfinished", self.inflight.count)
            try:
                await self.recovery.interrupt_own()
            except BotError as exc:
                log.error("could not report interrupted work: %s", exc)
        await self.aclose()

    async def aclose(self) -> None:
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        await self.http.aclose()
        await self.redis.aclose()


async def _every(seconds: float, job: Callable[[], Awaitable[None]]) -> None:
    while True:
        try:
            await job()
        except BotError as exc:
            log.warning("background %s failed: %s", getattr(job, "__name__", "job"), exc)
        await asyncio.sleep(seconds)


async def resolve_identity(client: AsyncWebClient) -> Identity:
    """Ask Slack who we are, once, so requests never wait on ``auth.test``."""
    try:
        async with slack_errors("auth.test"):
            result = await client.auth_test()
    except SlackError as exc:
        raise ConfigError(
            f"SLACK_BOT_TOKEN was refused by Slack ({exc.code}): copy the Bot User OAuth "
            "Token (xoxb-…) from your Slack app's OAuth & Permissions page."
        ) from None
    return Identity(
        user_id=str(result["user_id"]),
        bot_id=str(result.get("bot_id") or ""),
        team_id=str(result["team_id"]),
    )


async def build_runtime(settings: Settings) -> Runtime:
    catalog = load_catalog(settings.runbooks_file)
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else None
    identity = await resolve_identity(web_client(token, settings.slack_api_url))
    redis_url = settings.redis_url.get_secret_value() if settings.redis_url else None
    client = connect(redis_url)
    store = ThreadStore(
        client,
        thread_ttl=settings.copilot_thread_ttl_seconds,
        history_turns=settings.copilot_history_turns,
    )
    await _check_store(store)
    budget = SlackBudget(client, identity.team_id)
    slack = web_client(token, settings.slack_api_url, BudgetRetryHandler(budget))
    http = httpx.AsyncClient(timeout=httpx.Timeout(30.0, connect=10.0))
    work = WorkRegistry(client, heartbeat_ttl=3 * settings.copilot_heartbeat_interval)
    runs = _run_service(settings, catalog, client, slack, http, work)
    copilot = Copilot(catalog, runs.propose_for)
    replier = Replier(slack, budget, stream_max_age=settings.copilot_stream_max_age)
    ask = AskService(
        store, _inference(settings, http), replier, _ask_settings(settings), copilot, work
    )
    bolt = _bolt_app(settings, identity, token)
    inflight = InFlight()
    listeners.register(bolt, ask, slack, identity, inflight)
    commands.register(bolt, runs, inflight)
    recovery = Recovery(work, slack, ask, runs)
    runtime = Runtime(
        settings, identity, bolt, slack, client, http, store, ask, runs, inflight, work, recovery
    )
    runtime.start_background()
    return runtime


def _run_service(
    settings: Settings,
    catalog: Catalog,
    client: redis.Redis,
    slack: AsyncWebClient,
    http: httpx.AsyncClient,
    work: WorkRegistry,
) -> RunService:
    key = settings.inference_key.get_secret_value() if settings.inference_key else ""
    agents = AgentsClient(
        http,
        base_url=settings.inference_url,
        api_key=key,
        model=settings.inference_model_id,
        idle_timeout=settings.copilot_run_idle_timeout,
        deadline=settings.copilot_run_deadline,
    )
    return RunService(
        catalog,
        RequestStore(client),
        Approvers(slack, client),
        agents,
        slack,
        settings.inference_model_id,
        work,
    )


def _inference(settings: Settings, http: httpx.AsyncClient) -> InferenceClient:
    key = settings.inference_key.get_secret_value() if settings.inference_key else ""
    return InferenceClient(
        http,
        base_url=settings.inference_url,
        api_key=key,
        model=settings.inference_model_id,
        idle_timeout=settings.copilot_idle_timeout,
        deadline=settings.copilot_answer_deadline,
    )


def _ask_settings(settings: Settings) -> AskSettings:
    return AskSettings(
        history_chars=settings.copilot_history_chars,
        update_interval=settings.copilot_update_interval,
        footer=settings.copilot_footer,
    )


def _bolt_app(settings: Settings, identity: Identity, token: str | None) -> AsyncApp:
    async def authorize(**_: object) -> AuthorizeResult:
        return AuthorizeResult(
            enterprise_id=None,
            team_id=identity.team_id,
            bot_token=token,
            bot_id=identity.bot_id,
            bot_user_id=identity.user_id,
        )

    secret = settings.slack_signing_secret
    return AsyncApp(
        # A token-less client: Bolt copies it per request and sets the token from authorize().
        client=web_client(None, settings.slack_api_url),
        authorize=authorize,
        signing_secret=secret.get_secret_value() if secret else "",
        request_verification_enabled=not settings.socket_mode,
        raise_error_for_unhandled_request=False,
    )


async def _check_store(store: ThreadStore) -> None:
    try:
        await store.ping()
    except StateError as exc:
        log.error("Redis is not reachable at start-up (%s); will keep retrying per request", exc)
