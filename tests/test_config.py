import os
import subprocess
import sys
from pathlib import Path

import pytest

from bot.config import load_settings
from bot.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
BASE_ENV = {
    "SLACK_BOT_TOKEN": "xoxb-secret-token-value",
    "SLACK_SIGNING_SECRET": "signing-secret-value",
    "INFERENCE_KEY": "inf-secret-key-value",
}


def run_bot(env: dict[str, str], tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INFERENCE_"))}
    clean.update(env, PYTHONPATH=str(ROOT))
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        env=clean,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


@pytest.mark.parametrize(
    ("missing", "hint"),
    [
        ("SLACK_BOT_TOKEN", "xoxb-"),
        ("INFERENCE_KEY", "heroku-inference"),
        ("SLACK_SIGNING_SECRET", "Signing Secret"),
    ],
)
def test_missing_required_value_stops_with_one_line(
    tmp_path: Path, missing: str, hint: str
) -> None:
    env = {k: v for k, v in BASE_ENV.items() if k != missing}
    result = run_bot(env, tmp_path)
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert missing in lines[0]
    assert hint in lines[0]
    assert "Traceback" not in result.stderr


def test_malformed_value_names_the_variable(tmp_path: Path) -> None:
    result = run_bot({**BASE_ENV, "PORT": "web"}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip().startswith("error: PORT is invalid")
    assert "Traceback" not in result.stderr


def test_bad_token_shape_is_refused_without_echoing_it(tmp_path: Path) -> None:
    result = run_bot({**BASE_ENV, "SLACK_BOT_TOKEN": "xoxp-user-token-oops"}, tmp_path)
    assert result.returncode == 2
    assert "SLACK_BOT_TOKEN" in result.stderr
    assert "xoxb-" in result.stderr
    assert "xoxp-user-token-oops" not in result.stderr


def test_socket_mode_needs_no_signing_secret() -> None:
    settings = load_settings(
        _env_file=None, slack_bot_token="xoxb-1", inference_key="inf-1", slack_app_token="xapp-1"
    )
    settings.require("serve")
    assert settings.socket_mode


def test_secrets_never_appear_in_repr() -> None:
    settings = load_settings(
        _env_file=None,
        **{k.lower(): v for k, v in BASE_ENV.items()},
        redis_url="rediss://:hunter2@example:6379",
    )
    shown = repr(settings) + str(settings)
    for secret in [*BASE_ENV.values(), "hunter2"]:
        assert secret not in shown


def test_redis_url_scheme_is_checked() -> None:
    with pytest.raises(ConfigError, match="REDIS_URL"):
        load_settings(_env_file=None, redis_url="http://nope")
