"""Settings, read once at start-up from the environment (or a ``.env`` file).

Names are fixed by DESIGN.md §2. ``load_settings`` turns pydantic's validation report into
one line that names the variable and what to set it to, so start-up never shows a traceback.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from bot.errors import ConfigError

Mode = Literal["serve", "worker", "shell", "check"]

_HINTS = {
    "SLACK_BOT_TOKEN": "the bot token (xoxb-…) from your Slack app's OAuth & Permissions page",
    "SLACK_SIGNING_SECRET": "the Signing Secret from your Slack app's Basic Information page",
    "SLACK_APP_TOKEN": "an app-level token (xapp-…) with connections:write, or leave it unset",
    "INFERENCE_KEY": "the key of the Heroku Managed Inference add-on "
    "(heroku addons:create heroku-inference:standard)",
    "REDIS_URL": "a redis:// or rediss:// URL (heroku addons:create heroku-redis:mini)",
    "PORT": "a TCP port number such as 3000",
}


class Settings(BaseSettings):
    """Everything the bot reads from its environment. Secrets are ``SecretStr``: never printed."""

    model_config = SettingsConfigDict(
        env_file=".env", env_file_encoding="utf-8", extra="ignore", case_sensitive=False
    )

    slack_bot_token: SecretStr | None = None
    slack_signing_secret: SecretStr | None = None
    slack_app_token: SecretStr | None = None
    slack_api_url: str = "https://slack.com/api/"
    inference_url: str = "https://us.inference.heroku.com"
    inference_key: SecretStr | None = None
    inference_model_id: str = "claude-4-5-sonnet"
    redis_url: SecretStr | None = None
    runbooks_file: str = "runbooks.toml"
    port: int = Field(default=3000, ge=1, le=65535)

    # Tuning knobs; not part of the contract, so they carry a COPILOT_ prefix.
    copilot_idle_timeout: float = Field(default=45.0, gt=0)
    copilot_answer_deadline: float = Field(default=600.0, gt=0)
    copilot_history_turns: int = Field(default=40, ge=2)
    copilot_history_chars: int = Field(default=24_000, ge=1_000)
    copilot_thread_ttl_seconds: int = Field(default=7 * 24 * 3600, ge=60)
    copilot_update_interval: float = Field(default=1.0, gt=0)
    copilot_concurrent_answers: int = Field(default=500, ge=1)
    # "model · N tokens · S.s s" under each answer, for teams watching what answers cost.
    copilot_footer: bool = False
    # Worker processes a web process starts to do the answering; 0 answers in the web
    # process itself. Run `python -m bot worker` dynos instead by setting 0 here.
    copilot_workers: int = Field(default=1, ge=0, le=32)
    # Slack ends a native stream after about 5 minutes; an answer moves on before that.
    copilot_stream_max_age: float = Field(default=270.0, gt=0)
    copilot_run_deadline: float = Field(default=900.0, gt=0)
    # Heroku runs one tool for up to 120 s without sending anything.
    copilot_run_idle_timeout: float = Field(default=180.0, gt=0)
    copilot_sweep_interval: float = Field(default=15.0, gt=0)
    # A process unseen for three heartbeats is taken for dead and its work reported.
    copilot_heartbeat_interval: float = Field(default=10.0, gt=0)
    # Per process; Heroku's mini Key-Value Store allows 20 connections for all dynos together.
    copilot_redis_connections: int = Field(default=10, ge=2)
    # A thread's answering process holds its lock this long unless it refreshes it.
    copilot_lock_ttl: float = Field(default=30.0, ge=1)
    copilot_shutdown_grace: float = Field(default=25.0, gt=0, le=28)
    # Heroku names each dyno (web.1, worker.2) and keeps the name across restarts: a
    # process that starts under a name claims at once the work of the one that died under it.
    dyno: str | None = None

    @field_validator("slack_bot_token")
    @classmethod
    def _bot_token_shape(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value().startswith("xoxb-"):
            raise ValueError("must start with xoxb-")
        return v

    @field_validator("slack_app_token")
    @classmethod
    def _app_token_shape(cls, v: SecretStr | None) -> SecretStr | None:
        if v is not None and not v.get_secret_value():
            return None
        if v is not None and not v.get_secret_value().startswith("xapp-"):
            raise ValueError("must start with xapp-")
        return v

    @field_validator("slack_signing_secret")
    @classmethod
    def _blank_secret_is_none(cls, v: SecretStr | None) -> SecretStr | None:
        # A blank secret would sign with an empty key, which anyone can do: treat it as
        # unset, so HTTP mode refuses to start (``require``) and Socket Mode does not care.
        return None if v is None or not v.get_secret_value().strip() else v

    @field_validator("redis_url")
    @classmethod
    def _redis_scheme(cls, v: SecretStr | None) -> SecretStr | None:
        if v is None or not v.get_secret_value():
            return None
        if not v.get_secret_value().startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis:// or rediss://")
        return v

    @field_validator("dyno")
    @classmethod
    def _blank_is_none(cls, v: str | None) -> str | None:
        return v.strip() or None if v is not None else None

    @field_validator("slack_api_url")
    @classmethod
    def _trailing_slash(cls, v: str) -> str:
        return v if v.endswith("/") else v + "/"

    @property
    def socket_mode(self) -> bool:
        return self.slack_app_token is not None

    def require(self, mode: Mode) -> None:
        """Fail with one line when a value this mode needs is missing."""
        needed = ["INFERENCE_KEY"]
        if mode != "shell":
            needed.append("SLACK_BOT_TOKEN")
        if mode == "serve" and not self.socket_mode:
            needed.append("SLACK_SIGNING_SECRET")
        if mode == "worker":
            needed.append("REDIS_URL")  # the only way work reaches a worker
        for name in needed:
            if getattr(self, name.lower()) is None:
                unset = "is not set or is blank" if name == "SLACK_SIGNING_SECRET" else "is not set"
                raise ConfigError(f"{name} {unset}: set it to {_HINTS[name]}.")


def load_settings(**overrides: Any) -> Settings:
    """Build settings from the environment, or raise ConfigError with one readable line."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        raise ConfigError(_describe(exc)) from None


def _describe(exc: ValidationError) -> str:
    first = exc.errors()[0]
    name = str(first["loc"][0]).upper() if first["loc"] else "configuration"
    reason = first["msg"].removeprefix("Value error, ")
    hint = _HINTS.get(name)
    fix = f": set it to {hint}" if hint else ""
    return f"{name} is invalid ({reason}){fix}."
