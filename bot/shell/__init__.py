"""``python -m bot shell``: the bot in a terminal, driving the same handlers as Slack.

    stdin ──► repl.Shell ──(Socket Mode-shaped payloads)──► Bolt app ──► listeners, services
                                                                              │ Web API calls
    stdout ◄── render.Screen ◄── console.ConsoleSlack (127.0.0.1, SLACK_API_URL) ◄┘

The runtime is the one ``python -m bot`` serves (``bot.app.build_runtime``), with only its
Slack Web API pointed at the console. Answers come from the real Heroku Inference
(INFERENCE_KEY is required); state goes to REDIS_URL, or to the embedded store.
"""

from __future__ import annotations

from pydantic import SecretStr

from bot.app import Runtime, build_runtime
from bot.config import Settings, load_settings
from bot.errors import ConfigError
from bot.shell.console import ConsoleSlack
from bot.shell.render import Screen
from bot.shell.repl import Lines, Shell

DEFAULT_USER = "U0SHELL"
DEFAULT_CHANNEL = "C0SHELL"
NO_KEY = (
    "INFERENCE_KEY is not set: the shell answers with the real Heroku Inference. Get a key with "
    "`heroku addons:create heroku-inference:standard -a APP`, then "
    "`export INFERENCE_KEY=$(heroku config:get INFERENCE_KEY -a APP)` and run the shell again."
)
# The console accepts any token; the bot needs one of the right shape to build its client.
_CONSOLE_TOKEN = "xoxb-shell"


async def run_shell(*, user: str = DEFAULT_USER, channel: str | None = None) -> int:
    settings = load_settings()
    if settings.inference_key is None:
        raise ConfigError(NO_KEY)
    console = ConsoleSlack(Screen())
    await console.start()
    try:
        runtime = await build_runtime(_pointed_at(settings, console), sweeps=False)
        try:
            shell = Shell(runtime, console, user=user, channel=channel or _channel(runtime))
            console.screen.show("", _banner(settings, shell))
            await shell.run(Lines())
        finally:
            await runtime.inflight.drain(grace=5)
            await runtime.aclose()
    finally:
        await console.stop()
    return 0


def _pointed_at(settings: Settings, console: ConsoleSlack) -> Settings:
    return settings.model_copy(
        update={"slack_bot_token": SecretStr(_CONSOLE_TOKEN), "slack_api_url": console.base_url}
    )


def _channel(runtime: Runtime) -> str:
    """Where ``/run`` is typed: a channel the policy allows it in, if it names any."""
    allowed = runtime.runs.catalog.policy.channels
    return allowed[0] if allowed else DEFAULT_CHANNEL


def _banner(settings: Settings, shell: Shell) -> list[str]:
    state = "Redis (REDIS_URL)" if settings.redis_url else "embedded store (gone at exit)"
    return [
        f"Ops copilot shell · you are {shell.user}, /run goes to #{shell.channel}",
        f"model {settings.inference_model_id} at {settings.inference_url} · state: {state}",
        "Ask a question, try /run help, or /help for shell commands. Ctrl-D ends the session.",
    ]
