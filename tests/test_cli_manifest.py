"""``python -m bot manifest``: the structure Slack's manifest schema (v1) expects."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bot import manifest
from bot.errors import ConfigError
from bot.runbooks import Catalog, load_catalog
from tests.scenarios import SAMPLE

REPO = Path(__file__).resolve().parent.parent
URL = "https://shop-copilot.herokuapp.com"
EVENTS = f"{URL}/slack/events"

# Keys Slack's schema allows at each level (it rejects any other: additionalProperties false).
TOP_KEYS = {"_metadata", "display_information", "features", "oauth_config", "settings"}
FEATURE_KEYS = {"app_home", "bot_user", "slash_commands", "agent_view", "shortcuts"}
AGENT_VIEW_KEYS = {"agent_description", "suggested_prompts"}
SETTINGS_KEYS = {
    "event_subscriptions",
    "interactivity",
    "org_deploy_enabled",
    "socket_mode_enabled",
    "token_rotation_enabled",
}
COMMAND_KEYS = {"command", "url", "description", "usage_hint", "should_escape"}


def urls_in(value: Any) -> list[str]:
    if isinstance(value, dict):
        return [u for k, v in value.items() for u in urls_in(v) + ([v] if "url" in k else [])]
    if isinstance(value, list):
        return [u for v in value for u in urls_in(v)]
    return []


def assert_slack_shape(built: dict[str, Any]) -> None:
    assert set(built) <= TOP_KEYS
    assert set(built["features"]) <= FEATURE_KEYS
    assert set(built["settings"]) <= SETTINGS_KEYS
    assert 1 <= len(built["display_information"]["name"]) <= 35
    assert len(built["display_information"]["description"]) <= 140
    assert built["features"]["bot_user"]["display_name"]
    agent = built["features"]["agent_view"]
    assert set(agent) <= AGENT_VIEW_KEYS
    assert agent["agent_description"]
    assert 1 <= len(agent["suggested_prompts"]) <= 4
    for prompt in agent["suggested_prompts"]:
        assert set(prompt) == {"title", "message"}
        assert prompt["title"] and prompt["message"]
    [command] = built["features"]["slash_commands"]
    assert set(command) <= COMMAND_KEYS
    assert command["command"] == "/run"
    assert command["description"]
    assert 1 <= len(command["usage_hint"]) <= 1000
    assert built["settings"]["interactivity"]["is_enabled"] is True


def test_http_manifest_points_everything_at_one_url(catalog: Catalog) -> None:
    built = manifest.build(catalog, url=URL, socket=False)
    assert_slack_shape(built)
    assert urls_in(built) == [EVENTS] * 3
    assert built["settings"]["socket_mode_enabled"] is False
    events = built["settings"]["event_subscriptions"]["bot_events"]
    assert set(events) == {
        "agent_session_stopped",
        "app_home_opened",
        "app_mention",
        "message.channels",
        "message.groups",
        "message.im",
        "message.mpim",
    }
    scopes = set(built["oauth_config"]["scopes"]["bot"])
    assert set(manifest.REQUIRED_SCOPES) <= scopes
    assert {"assistant:write", "groups:history", "mpim:history", "chat:write"} <= scopes


def test_default_prompts_come_from_the_runbooks(catalog: Catalog) -> None:
    prompts = manifest.build(catalog, url=URL, socket=False)["features"]["agent_view"]
    titles = [p["title"] for p in prompts["suggested_prompts"]]
    assert titles == [
        "Diagnose shop-staging",
        "Run database migrations on shop-staging",
        "Read recent logs",
    ]
    bare = manifest.build(Catalog(), url=URL, socket=False)["features"]["agent_view"]
    assert bare["suggested_prompts"][0]["title"] == "What can you do?"


def test_usage_hint_names_the_runbooks(catalog: Catalog) -> None:
    hint = manifest.build(catalog, url=URL, socket=False)["features"]["slash_commands"][0]
    assert "migrate" in hint["usage_hint"]
    assert "logs" in hint["usage_hint"]
    assert "help" in hint["usage_hint"]
    assert manifest.usage_hint(Catalog()) == "<runbook> key=value … (or: help)"


def test_socket_manifest_has_no_request_urls(catalog: Catalog) -> None:
    built = manifest.build(catalog, url=None, socket=True)
    assert_slack_shape(built)
    assert urls_in(built) == []
    assert built["settings"]["socket_mode_enabled"] is True


@pytest.mark.parametrize(
    "given",
    [URL, f"{URL}/", f"{URL}/slack/events", f" {URL} "],
)
def test_url_forms_give_the_same_endpoint(given: str) -> None:
    assert manifest.events_url(given) == EVENTS


@pytest.mark.parametrize("given", ["http://shop.herokuapp.com", "shop.herokuapp.com", "https://"])
def test_non_https_url_is_refused(given: str) -> None:
    with pytest.raises(ConfigError, match="https://"):
        manifest.events_url(given)


def test_repo_manifest_matches_the_generator() -> None:
    expected = manifest.build(
        load_catalog(REPO / "runbooks.toml"), url="https://YOUR-APP.herokuapp.com", socket=False
    )
    shipped = json.loads((REPO / "slack-manifest.json").read_text(encoding="utf-8"))
    assert shipped == expected, (
        "regenerate it: python -m bot manifest --url https://YOUR-APP.herokuapp.com "
        "> slack-manifest.json"
    )


def run_cli(*args: str, runbooks: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "RUNBOOKS_FILE": str(runbooks)}
    return subprocess.run(
        [sys.executable, "-m", "bot", "manifest", *args],
        env=env,
        cwd=runbooks.parent,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_command_prints_json(tmp_path: Path) -> None:
    runbooks = tmp_path / "runbooks.toml"
    runbooks.write_text(SAMPLE)
    done = run_cli("--url", URL, runbooks=runbooks)
    assert done.returncode == 0, done.stderr
    built = json.loads(done.stdout)
    assert urls_in(built) == [EVENTS] * 3
    assert "migrate" in built["features"]["slash_commands"][0]["usage_hint"]

    refused = run_cli("--url", "http://insecure.example", runbooks=runbooks)
    assert refused.returncode == 2
    assert refused.stdout == ""
    assert refused.stderr.count("\n") == 1
    assert "https://" in refused.stderr
