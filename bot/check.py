"""``python -m bot check``: is this deployment able to serve? One row per thing, with the fix.

Settings and the runbooks file are validated first; then Slack (``auth.test`` and the
token's scopes), Redis and Heroku Inference are contacted, concurrently. Every problem is a
row, never a traceback, so one run lists everything to fix. Rows never show secrets: values
of tokens, keys and URLs with passwords stay out of the output.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import httpx
from pydantic import ValidationError
from slack_sdk.web.async_client import AsyncWebClient

from bot.config import Settings
from bot.errors import (
    BotError,
    ConfigError,
    InferenceAuthError,
    InferenceError,
    InferenceRateLimited,
    InferenceUnavailable,
    SlackError,
)
from bot.inference import InferenceClient
from bot.manifest import REQUIRED_SCOPES
from bot.runbooks import load_catalog
from bot.slack.calls import slack_errors, web_client
from bot.slack.probe import UNREACHABLE, probe_agent
from bot.state import connect
from bot.state.connect import redis_errors

Status = Literal["ok", "warn", "fail", "skip"]
PROBE_TIMEOUT = 20.0
_APP = "-a APP"

# How to fix each setting, phrased for a Heroku deployment.
_FIXES = {
    "SLACK_BOT_TOKEN": f"heroku config:set SLACK_BOT_TOKEN=xoxb-… {_APP} (Slack app → "
    "OAuth & Permissions → Bot User OAuth Token)",
    "SLACK_SIGNING_SECRET": f"heroku config:set SLACK_SIGNING_SECRET=… {_APP} (Slack app → "
    "Basic Information → Signing Secret), or set SLACK_APP_TOKEN for Socket Mode",
    "SLACK_APP_TOKEN": "an app-level token xapp-… with connections:write (Slack app → Basic "
    "Information → App-Level Tokens), or unset it for HTTP mode",
    "INFERENCE_KEY": f"heroku addons:create heroku-inference:standard {_APP}, then "
    f"heroku config:get INFERENCE_KEY {_APP}",
    "REDIS_URL": f"a redis:// or rediss:// URL: heroku addons:create heroku-redis:mini {_APP}",
}


@dataclass(frozen=True)
class Finding:
    name: str
    status: Status
    detail: str
    fix: str = ""


async def diagnose(**overrides: Any) -> list[Finding]:
    """Every check, in display order. ``overrides`` go to Settings (tests pass them)."""
    settings, findings = read_settings(**overrides)
    slack, redis_row, inference = await asyncio.gather(
        check_slack(settings), check_redis(settings), check_inference(settings)
    )
    return [*findings, check_runbooks(settings), *slack, redis_row, inference]


async def run(**overrides: Any) -> int:
    """Print the table; exit code 1 when anything needs fixing, else 0."""
    findings = await diagnose(**overrides)
    print(table(findings))
    return 1 if problems(findings) else 0


def problems(findings: list[Finding]) -> list[Finding]:
    return [f for f in findings if f.status == "fail"]


# -- settings and runbooks ---------------------------------------------------------------


def read_settings(**overrides: Any) -> tuple[Settings, list[Finding]]:
    """Settings with every malformed value reported, then replaced by its default."""
    values = dict(overrides)
    findings: list[Finding] = []
    while True:
        try:
            settings = Settings(**values)
            break
        except ValidationError as exc:
            for name, reason in _invalid_fields(exc):
                values[name] = Settings.model_fields[name].default
                variable = name.upper()
                findings.append(Finding(variable, "fail", f"invalid: {reason}", _fix(variable)))
    reported = {f.name for f in findings}
    missing = [n for n in _required(settings) if _unset(settings, n) and n not in reported]
    findings += [_missing(name) for name in missing]
    return settings, findings or [Finding("settings", "ok", _summary(settings))]


def _invalid_fields(exc: ValidationError) -> list[tuple[str, str]]:
    fields = []
    for error in exc.errors():
        name = str(error["loc"][0]) if error["loc"] else ""
        if name not in Settings.model_fields:
            raise ConfigError(f"settings are invalid: {error['msg']}") from None
        fields.append((name, error["msg"].removeprefix("Value error, ")))
    return fields


def _required(settings: Settings) -> list[str]:
    needed = ["SLACK_BOT_TOKEN", "INFERENCE_KEY"]
    return needed if settings.socket_mode else [*needed, "SLACK_SIGNING_SECRET"]


def _unset(settings: Settings, name: str) -> bool:
    return getattr(settings, name.lower()) is None


def _missing(name: str) -> Finding:
    return Finding(name, "fail", "not set", _fix(name))


def _fix(variable: str) -> str:
    return _FIXES.get(variable, f"see the Configuration table in the README for {variable}")


def _summary(settings: Settings) -> str:
    mode = "Socket Mode" if settings.socket_mode else f"HTTP mode on port {settings.port}"
    return f"{mode}; model {settings.inference_model_id}"


def check_runbooks(settings: Settings) -> Finding:
    path = Path(settings.runbooks_file)
    if not path.exists():
        return Finding(
            "runbooks",
            "warn",
            f"no file at {path}: /run has nothing to run",
            "create it (see the README's runbooks reference) or set RUNBOOKS_FILE",
        )
    try:
        catalog = load_catalog(path)
    except ConfigError as exc:
        return Finding("runbooks", "fail", str(exc), f"edit {path} at the line named")
    names = ", ".join(catalog.runbooks) or "none"
    return Finding("runbooks", "ok", f"{path}: {len(catalog.runbooks)} runbooks ({names})")


# -- services ----------------------------------------------------------------------------


async def check_slack(settings: Settings) -> list[Finding]:
    token = settings.slack_bot_token
    if token is None:
        return [Finding("Slack", "skip", "not contacted: SLACK_BOT_TOKEN is not set")]
    client = web_client(token.get_secret_value(), settings.slack_api_url)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT), slack_errors("auth.test"):
            response = await client.auth_test()
    except TimeoutError:
        return [Finding("Slack", "fail", "auth.test timed out", _slack_unreachable(settings))]
    except SlackError as exc:
        return [_slack_refused(settings, exc)]
    who = f"@{response.get('user')} in {response.get('team')} ({response.get('team_id')})"
    found = [Finding("Slack", "ok", f"auth.test: {who}"), _scopes(response.headers)]
    found.append(await check_agent(settings, client))
    if settings.slack_app_token is not None:
        found.append(await check_socket_mode(settings, settings.slack_app_token.get_secret_value()))
    return found


async def check_socket_mode(settings: Settings, app_token: str) -> Finding:
    """Socket Mode needs an app-level token that may open connections."""
    client = web_client(None, settings.slack_api_url)
    try:
        async with asyncio.timeout(PROBE_TIMEOUT), slack_errors("apps.connections.open"):
            await client.apps_connections_open(app_token=app_token)
    except TimeoutError:
        return Finding("Socket Mode", "fail", "apps.connections.open timed out",
                       _slack_unreachable(settings))  # fmt: skip
    except SlackError as exc:
        return Finding("Socket Mode", "fail", f"SLACK_APP_TOKEN was refused ({exc.code})",
                       _fix("SLACK_APP_TOKEN"))  # fmt: skip
    return Finding("Socket Mode", "ok", "SLACK_APP_TOKEN can open a connection")


# Refusals that mean the workspace has no agent sessions at all: nothing to fix in the app,
# and answers work without them (no stop button).
_NO_SESSIONS = {"unknown_method", "feature_not_enabled", "team_not_allowed", "not_allowed"}
_REINSTALL = "then reinstall the app to the workspace"


async def check_agent(settings: Settings, client: AsyncWebClient) -> Finding:
    """Is the app declared an agent, and subscribed to the stop button's event?"""
    name = "Slack agent"
    try:
        async with asyncio.timeout(PROBE_TIMEOUT):
            probe = await probe_agent(client)
    except UNREACHABLE:
        return Finding(name, "warn", "agents.sessions.setStatus did not answer",
                       _slack_unreachable(settings))  # fmt: skip
    if probe.error == "not_authorized":
        return Finding(
            name,
            "fail",
            "the app is not declared an agent: no sessions, no stop button, no suggested prompts",
            "turn on Agent in the app settings (api.slack.com/apps → your app → Agent), or "
            f"update the app from `python -m bot manifest` (features.agent_view), {_REINSTALL}",
        )
    if probe.error == "missing_scope":
        return Finding(
            name,
            "fail",
            "the token lacks assistant:write, which agent sessions need",
            f"update the app from `python -m bot manifest` (features.agent_view), {_REINSTALL}",
        )
    if probe.error in _NO_SESSIONS:
        return Finding(
            name,
            "warn",
            f"this workspace offers no agent sessions ({probe.error}): answers work without "
            "a stop button",
        )
    if not probe.subscribed:
        return Finding(
            name,
            "fail",
            "not subscribed to agent_session_stopped: people see a loader they cannot click "
            "to stop an answer",
            "add the bot event agent_session_stopped (Event Subscriptions), or update the app "
            f"from `python -m bot manifest`, {_REINSTALL}",
        )
    return Finding(name, "ok", "declared an agent; agent_session_stopped subscribed")


def _slack_refused(settings: Settings, exc: SlackError) -> Finding:
    if exc.code.startswith("connection_error"):
        return Finding(
            "Slack", "fail", f"cannot reach Slack ({exc.code})", _slack_unreachable(settings)
        )
    return Finding(
        "Slack", "fail", f"auth.test refused the token ({exc.code})", _fix("SLACK_BOT_TOKEN")
    )


def _slack_unreachable(settings: Settings) -> str:
    return f"check the network, and SLACK_API_URL ({settings.slack_api_url})"


def _scopes(headers: Any) -> Finding:
    """Real Slack lists a token's scopes in the ``x-oauth-scopes`` header of every response."""
    lowered = {str(k).lower(): str(v) for k, v in dict(headers or {}).items()}
    granted = lowered.get("x-oauth-scopes")
    if granted is None:
        return Finding("Slack scopes", "skip", "Slack did not report the token's scopes")
    missing = sorted(set(REQUIRED_SCOPES) - {s.strip() for s in granted.split(",")})
    if not missing:
        return Finding("Slack scopes", "ok", "all needed scopes granted")
    return Finding(
        "Slack scopes",
        "fail",
        f"missing {', '.join(missing)}",
        "add them under OAuth & Permissions → Bot Token Scopes (or update the app from "
        "`python -m bot manifest`), then reinstall the app to the workspace",
    )


async def check_redis(settings: Settings) -> Finding:
    if settings.redis_url is None:
        return Finding(
            "Redis",
            "warn",
            "REDIS_URL not set: embedded store, not persistent and not shared",
            _FIXES["REDIS_URL"],
        )
    client = connect(settings.redis_url.get_secret_value())
    try:
        async with asyncio.timeout(PROBE_TIMEOUT), redis_errors():
            await client.ping()
    except (BotError, TimeoutError) as exc:
        detail = str(exc) or "ping timed out"
        return Finding(
            "Redis", "fail", detail, f"check REDIS_URL: heroku config:get REDIS_URL {_APP}"
        )
    finally:
        await client.aclose()
    return Finding("Redis", "ok", "ping answered")


async def check_inference(settings: Settings) -> Finding:
    key = settings.inference_key
    if key is None:
        return Finding("Inference", "skip", "not contacted: INFERENCE_KEY is not set")
    async with httpx.AsyncClient(timeout=httpx.Timeout(PROBE_TIMEOUT, connect=10.0)) as http:
        client = InferenceClient(
            http,
            base_url=settings.inference_url,
            api_key=key.get_secret_value(),
            model=settings.inference_model_id,
            idle_timeout=PROBE_TIMEOUT,
            deadline=PROBE_TIMEOUT,
        )
        try:
            await client.complete([{"role": "user", "content": "ping"}], max_tokens=1)
        except InferenceError as exc:
            return _inference_problem(settings, exc)
    return Finding("Inference", "ok", f"{settings.inference_model_id} answered a one-token call")


def _inference_problem(settings: Settings, exc: InferenceError) -> Finding:
    status = f"HTTP {exc.status}" if exc.status else "no answer"
    if isinstance(exc, InferenceRateLimited):
        return Finding("Inference", "warn", "key accepted, but rate-limited right now")
    if isinstance(exc, InferenceAuthError):
        return Finding(
            "Inference",
            "fail",
            f"refused the key or the model {settings.inference_model_id} ({status})",
            f"heroku config:get INFERENCE_KEY {_APP}; INFERENCE_MODEL_ID must be the "
            "add-on's model",
        )
    if isinstance(exc, InferenceUnavailable):
        return Finding(
            "Inference",
            "fail",
            f"cannot reach {settings.inference_url} ({status})",
            f"check INFERENCE_URL: heroku config:get INFERENCE_URL {_APP}",
        )
    return Finding("Inference", "fail", f"refused a test call: {exc}", "check INFERENCE_MODEL_ID")


# -- output ------------------------------------------------------------------------------

_LABELS = {"ok": "OK", "warn": "WARN", "fail": "FAIL", "skip": "--"}


def table(findings: list[Finding]) -> str:
    width = max(len(f.name) for f in findings) + 2
    lines = []
    for finding in findings:
        lines.append(f"{_LABELS[finding.status]:<6}{finding.name:<{width}}{finding.detail}")
        if finding.fix:
            lines.append(f"{'':<6}{'':<{width}}fix: {finding.fix}")
    failed = len(problems(findings))
    lines.append("")
    lines.append(
        f"{failed} problem{'s' if failed != 1 else ''} to fix." if failed else "All checks passed."
    )
    return "\n".join(lines)
