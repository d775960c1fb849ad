"""Building the running bot: settings in, clients and services wired together.

This is the one place that creates clients; everything else receives them. Tests build the
same ``Runtime`` pointed at fake servers on loopback.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import TypeVar

import aiohttp
import httpx
import redis.asyncio as redis
from pydantic import SecretStr
from slack_bolt.async_app import AsyncApp
from slack_bolt.authorization import AuthorizeResult
from slack_sdk.web.async_client import AsyncWebClient

from bot.access import Access
from bot.ask import Answerer, AskSettings, ThreadScheduler
from bot.ask.context import ThreadReader
from bot.ask.stops import StopSignals
from bot.background import Background, stop_requested
from bot.config import Settings
from bot.errors import BotError, ConfigError, SlackError, StateError
from bot.feedback import Feedback
from bot.greeting import Greeter
from bot.handlers import feedback, home, messages, outsiders, runs, sessions
from bot.handlers.intake import Intake
from bot.inference import AgentsClient, InferenceClient
from bot.inflight import InFlight
from bot.proposals import Copilot
from bot.recovery import Recovery
from bot.render import buttons
from bot.render.card_writer import CardWriter
from bot.render.home_publisher import HomePublisher, HomeRefreshingBoard
from bot.runbooks import Catalog, load_catalog
from bot.runs.approvers import Approvers
from bot.runs.execution import Executor
from bot.runs.limits import RunLimits
from bot.runs.requests import Requests
from bot.runs.service import STRANDED_AFTER, RunService
from bot.slack.budget import BudgetRetryHandler, SlackBudget
from bot.slack.calls import slack_errors, web_client
from bot.slack.events import Identity
from bot.slack.reply import Replier
from bot.slack.sessions import Sessions
from bot.state import ThreadStore, connect
from bot.state.budget import BudgetStore
from bot.state.connect import connect_sync
from bot.state.feedback import FeedbackStore
from bot.state.greetings import Greetings
from bot.state.heartbeat import Heartbeat
from bot.state.limits import LimitStore
from bot.state.people import PeopleCache
from bot.state.requests import RequestStore
from bot.state.sessions import SessionStore
from bot.state.thread_reads import ThreadReads
from bot.state.usergroups import UserGroupCache
from bot.state.work import WorkRegistry
from bot.state.work_queue import WorkQueue

log = logging.getLogger(__name__)

WEB_REDIS_CONNECTIONS = 4


@dataclass
class Runtime:
    settings: Settings
    identity: Identity
    bolt: AsyncApp
    slack: AsyncWebClient
    redis: redis.Redis
    http: httpx.AsyncClient
    store: ThreadStore
    scheduler: ThreadScheduler
    runs: RunService
    inflight: InFlight
    work: WorkRegistry
    recovery: Recovery
    session: aiohttp.ClientSession
    intake: Intake
    queue: WorkQueue
    tasks: Background
    requests: Requests
    # Beats from a thread of its own; None with the embedded store, where no other process
    # can look, so the event loop beats.
    heartbeat: Heartbeat | None = None
    background: list[asyncio.Task[None]] = field(default_factory=list)

    def start_background(self, *, sweeps: bool = True) -> None:
        """The heartbeat, and sweeps for expired requests and for work of dead processes;
        first, the work of the process this one replaces."""
        settings = self.settings
        if self.heartbeat is not None:
            self.heartbeat.start()
        else:
            beat = _every(settings.copilot_heartbeat_interval, self._beat)
            self.background.append(asyncio.create_task(beat))
        if sweeps:
            self.background.append(asyncio.create_task(self._take_over()))
            self.background.append(
                asyncio.create_task(_every(settings.copilot_sweep_interval, self._sweep))
            )

    async def _take_over(self) -> None:
        try:
            await self.recovery.take_over()
        except BotError as exc:
            log.warning("could not take over from the previous process: %s", exc)

    async def _beat(self) -> None:
        await self.work.heartbeat()

    async def _sweep(self) -> None:
        # Independent: a failure in one must not skip the other.
        for sweep in (
            self.runs.sweep_expired,
            self.recovery.sweep,
            self.scheduler.rescue_stranded,
            self.runs.start_stranded,
        ):
            try:
                await sweep()
            except BotError as exc:
                log.warning("sweep failed: %s", exc)
        log.debug("sweep done")

    async def shutdown(self) -> None:
        """Stop: let work in flight finish within the grace period, report what did not."""
        if not await self.inflight.drain(grace=self.settings.copilot_shutdown_grace):
            log.warning("shutting down with %d requests unfinished", self.inflight.count)
            await self._stop_heartbeat()  # this process now claims its own work
            try:
                await self.recovery.interrupt_own()
            except BotError as exc:
                log.error("could not report interrupted work: %s", exc)
        await self.aclose()

    async def _stop_heartbeat(self) -> None:
        if self.heartbeat is not None:
            await self.heartbeat.stop()

    async def aclose(self) -> None:
        await self._stop_heartbeat()
        for task in self.background:
            task.cancel()
        await asyncio.gather(*self.background, return_exceptions=True)
        await self.http.aclose()
        await self.session.close()
        await self.redis.aclose()


async def _every(seconds: float, job: Callable[[], Awaitable[None]]) -> None:
    """Run ``job`` forever; one failure is logged and the next round comes all the same."""
    while not stop_requested():
        try:
            await job()
        except Exception:
            log.exception("background %s failed", getattr(job, "__name__", "job"))
        await asyncio.sleep(seconds)


async def resolve_identity(client: AsyncWebClient, api_url: str) -> Identity:
    """Ask Slack who we are, once, so requests never wait on ``auth.test``."""
    try:
        async with slack_errors("auth.test"):
            result = await client.auth_test()
    except SlackError as exc:
        if exc.code.startswith("connection_error"):
            raise ConfigError(
                f"Slack is unreachable at {api_url} ({exc.code}): check the network, or "
                "SLACK_API_URL if you set it."
            ) from None
        raise ConfigError(
            f"SLACK_BOT_TOKEN was refused by Slack ({exc.code}): copy the Bot User OAuth "
            "Token (xoxb-…) from your Slack app's OAuth & Permissions page."
        ) from None
    return Identity(
        user_id=str(result["user_id"]),
        bot_id=str(result.get("bot_id") or ""),
        team_id=str(result["team_id"]),
    )


async def build_runtime(
    settings: Settings, *, sweeps: bool = True, announce: bool = False, name: str | None = None
) -> Runtime:
    """Everything the bot needs, wired. ``sweeps=False`` (the local shell) leaves the shared
    sweeps alone, so a console never acts on other processes' requests or threads.
    ``announce=True`` (a web process with workers) hands questions and approved runs to the
    work queue instead of answering and running them here. ``name`` is the process's stable
    name, ``DYNO`` by default."""
    catalog = load_catalog(settings.runbooks_file)
    token = _secret(settings.slack_bot_token)
    identity = await resolve_identity(
        web_client(token, settings.slack_api_url), settings.slack_api_url
    )
    connections = settings.copilot_redis_connections
    if announce:
        # A web process with workers only queues questions and handles commands and clicks:
        # a few connections do, and the plan's allowance (20 on Heroku's mini) goes to workers.
        connections = min(connections, WEB_REDIS_CONNECTIONS)
    client = connect(_secret(settings.redis_url), max_connections=connections)
    store = ThreadStore(
        client,
        thread_ttl=settings.copilot_thread_ttl_seconds,
        history_turns=settings.copilot_history_turns,
        lock_ttl=settings.copilot_lock_ttl,
        questions_per_minute=catalog.policy.max_questions_per_user_per_minute,
    )
    await _check_store(store)
    budget = SlackBudget(BudgetStore(client, identity.team_id))
    session = aiohttp.ClientSession()
    slack = web_client(token, settings.slack_api_url, BudgetRetryHandler(budget), session)
    # One connection per streaming answer: hundreds may be open at once in an incident.
    http = httpx.AsyncClient(
        timeout=httpx.Timeout(30.0, connect=10.0),
        limits=httpx.Limits(max_connections=1000, max_keepalive_connections=50),
    )
    work = WorkRegistry(
        client, heartbeat_ttl=3 * settings.copilot_heartbeat_interval, name=name or settings.dyno
    )
    queue = WorkQueue(client, consumer=work.process)
    inflight = InFlight()
    tasks = Background(inflight)
    requests = Requests(RequestStore(client))
    access = Access(
        slack,
        PeopleCache(client),
        team=identity.team_id,
        allow_external=catalog.policy.allow_external_users,
    )
    homes = HomePublisher(slack, budget, tasks)
    session_store = SessionStore(client)
    agent_sessions = Sessions(slack, budget, session_store, tasks)
    stops = StopSignals(session_store)
    run_service = _runs(
        settings, catalog, requests, slack, client, http, work, budget, tasks, access, homes,
        agent_sessions, queue if announce else None,
    )  # fmt: skip
    votes = Feedback(FeedbackStore(client), settings.inference_model_id)
    homes.attach(run_service, votes)
    replier = Replier(
        slack,
        budget,
        stream_max_age=settings.copilot_stream_max_age,
        update_interval=settings.copilot_update_interval,
        feedback=buttons.feedback,
    )
    answerer = Answerer(
        store,
        _model_client(
            InferenceClient,
            settings,
            http,
            idle=settings.copilot_idle_timeout,
            deadline=settings.copilot_answer_deadline,
        ),
        replier,
        _ask_settings(settings),
        Copilot(catalog, run_service.propose),
        access,
        ThreadReader(slack, budget, ThreadReads(client), access, identity.user_id),
        agent_sessions,
        stops,
    )
    scheduler = ThreadScheduler(
        store,
        answerer,
        tasks,
        work,
        concurrent_answers=settings.copilot_concurrent_answers,
        announce=announce,
    )
    secret = None if settings.socket_mode else _secret(settings.slack_signing_secret)
    intake = Intake(scheduler, slack, identity, inflight, tasks, secret, access)
    bolt = _bolt_app(settings, identity, token, session)
    outsiders.register(bolt, access)
    messages.register(bolt, scheduler, intake, inflight)
    runs.register(bolt, run_service, inflight)
    greeter = Greeter(slack, budget, Greetings(client), catalog, access)
    home.register(bolt, homes, inflight, greeter)
    feedback.register(bolt, votes, inflight)
    sessions.register(bolt, stops, run_service, inflight, identity.team_id)
    runtime = Runtime(
        settings=settings,
        identity=identity,
        bolt=bolt,
        slack=slack,
        redis=client,
        http=http,
        store=store,
        scheduler=scheduler,
        runs=run_service,
        inflight=inflight,
        work=work,
        recovery=Recovery(work, slack, scheduler, run_service, tasks, agent_sessions),
        session=session,
        intake=intake,
        queue=queue,
        tasks=tasks,
        requests=requests,
        heartbeat=_heartbeat(settings, work),
    )
    runtime.start_background(sweeps=sweeps)
    return runtime


def _heartbeat(settings: Settings, work: WorkRegistry) -> Heartbeat | None:
    url = _secret(settings.redis_url)
    if url is None:
        return None
    interval = settings.copilot_heartbeat_interval
    # Its blocking wait between beats lasts one interval; a read may take a few seconds more.
    client = connect_sync(url, read_timeout=interval + 5)
    return Heartbeat(client, work.process, interval=interval, ttl=3 * interval, name=work.name)


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def _runs(
    settings: Settings,
    catalog: Catalog,
    requests: Requests,
    slack: AsyncWebClient,
    client: redis.Redis,
    http: httpx.AsyncClient,
    work: WorkRegistry,
    budget: SlackBudget,
    tasks: Background,
    access: Access,
    homes: HomePublisher,
    agent_sessions: Sessions,
    hand_over: WorkQueue | None,
) -> RunService:
    approvers = Approvers(slack, UserGroupCache(client))
    # Every change a card shows also redraws the App Home of the people it concerns.
    board = HomeRefreshingBoard(CardWriter(slack), homes, approvers)
    executor = Executor(
        requests=requests,
        agents=_model_client(
            AgentsClient,
            settings,
            http,
            idle=settings.copilot_run_idle_timeout,
            deadline=settings.copilot_run_deadline,
        ),
        slack=slack,
        board=board,
        work=work,
        budget=budget,
        sessions=agent_sessions,
    )
    return RunService(
        catalog=catalog,
        requests=requests,
        approvers=approvers,
        executor=executor,
        board=board,
        model=settings.inference_model_id,
        background=tasks,
        limits=RunLimits(
            LimitStore(client),
            requests,
            catalog.policy,
            run_deadline=settings.copilot_run_deadline,
        ),
        access=access,
        hand_over=hand_over,
        # Sweeping more often (as tests do) finds a lost hand-over sooner; but not within a
        # second, so that a process begins the runs it decided itself, not its sweep.
        stranded_after=min(STRANDED_AFTER, max(settings.copilot_sweep_interval, 1.0)),
    )


_Model = TypeVar("_Model", InferenceClient, AgentsClient)


def _model_client(
    kind: type[_Model], settings: Settings, http: httpx.AsyncClient, *, idle: float, deadline: float
) -> _Model:
    """A client of the configured model; chat answers and agent runs keep their own pace."""
    return kind(
        http,
        base_url=settings.inference_url,
        api_key=_secret(settings.inference_key) or "",
        model=settings.inference_model_id,
        idle_timeout=idle,
        deadline=deadline,
    )


def _ask_settings(settings: Settings) -> AskSettings:
    return AskSettings(
        history_chars=settings.copilot_history_chars,
        footer=settings.copilot_footer,
    )


def _bolt_app(
    settings: Settings, identity: Identity, token: str | None, session: aiohttp.ClientSession
) -> AsyncApp:
    async def authorize(**_: object) -> AuthorizeResult:
        return AuthorizeResult(
            enterprise_id=None,
            team_id=identity.team_id,
            bot_token=token,
            bot_id=identity.bot_id,
            bot_user_id=identity.user_id,
        )

    secret = settings.slack_signing_secret
    # Bolt reads SLACK_BOT_TOKEN from the environment and warns, at every start, that it is
    # unused beside our client; that is by design here, so the warning is kept out of the log.
    bolt_log = logging.getLogger("slack_bolt.AsyncApp")
    quiet = _Without("`token` will be unused")
    bolt_log.addFilter(quiet)
    try:
        return AsyncApp(
            # A token-less client: Bolt copies it per request and sets the token from
            # authorize().
            client=web_client(None, settings.slack_api_url, session=session),
            authorize=authorize,
            signing_secret=secret.get_secret_value() if secret else "",
            request_verification_enabled=not settings.socket_mode,
            raise_error_for_unhandled_request=False,
        )
    finally:
        bolt_log.removeFilter(quiet)


class _Without(logging.Filter):
    def __init__(self, text: str) -> None:
        super().__init__()
        self._text = text

    def filter(self, record: logging.LogRecord) -> bool:
        return self._text not in record.getMessage()


async def _check_store(store: ThreadStore) -> None:
    try:
        await store.ping()
    except StateError as exc:
        log.error("Redis is not reachable at start-up (%s); will keep retrying per request", exc)
