"""The runbooks file and /run input: validation, line numbers, rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError, RequestRefused
from bot.runbooks import Catalog, agent_body, load_catalog
from bot.runs.invocation import parse
from tests.scenarios import SAMPLE


def test_canonical_and_positional_forms(catalog: Catalog) -> None:
    assert parse("migrate app=shop-staging", catalog).values == {"app": "shop-staging"}
    assert parse('migrate app="shop-staging"', catalog).values == {"app": "shop-staging"}
    assert parse("migrate shop-staging", catalog).values == {"app": "shop-staging"}
    assert parse("logs app=shop", catalog).values == {"app": "shop", "lines": "200"}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("nope", "no runbook `nope`. Runbooks: `migrate`, `logs`"),
        ("migrate app=shop-evil", "must be one of shop-staging, shop-production"),
        ("migrate", "needs `app`"),
        ("migrate app=shop-staging tools=x", "no parameter `tools`"),
        ("logs app='shop; rm -rf /'", "must match ^[a-z0-9-]+$"),
        ("migrate app='unclosed", "couldn't read that command"),
        ("migrate app=shop-staging app=shop-production", "given twice"),
    ],
)
def test_refusals_say_what_is_allowed(catalog: Catalog, text: str, expected: str) -> None:
    with pytest.raises(RequestRefused) as info:
        parse(text, catalog)
    assert expected in str(info.value)


def test_rendered_body_takes_values_only_in_placeholders(catalog: Catalog) -> None:
    invocation = parse("migrate app=shop-staging", catalog)
    body = agent_body(catalog.runbooks["migrate"], invocation.values, "claude-4-5-sonnet")
    assert body["model"] == "claude-4-5-sonnet"
    assert body["messages"][-1]["content"] == (
        "Run the pending database migrations on shop-staging and summarize the output."
    )
    assert body["tools"] == [
        {
            "type": "heroku_tool",
            "name": "dyno_run_command",
            "runtime_params": {
                "target_app_name": "shop-staging",
                "ttl_seconds": 120,
                "max_calls": 1,
                "tool_params": {
                    "cmd": "python manage.py migrate",
                    "description": "Runs the database migrations",
                    "parameters": {"type": "object", "properties": {}},
                },
            },
        }
    ]
    mcp = agent_body(catalog.runbooks["logs"], {"app": "a", "lines": "5"}, "m")["tools"]
    assert mcp == [{"type": "mcp", "name": "mcp-logs/tail", "runtime_params": {}}]


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            ("choices = [", "choicez = ["),
            ":12: runbook 'migrate', key 'params.app.choicez': unknown key",
        ),
        (("{app} and", "{ap} and"), "runbook 'migrate'"),
        (('pattern = "^[0-9]{1,4}$"', 'pattern = "^[0-9"'), "not a valid regular expression"),
        (("approval_ttl_seconds = 600", "approval_ttl_seconds = -1"), "approval_ttl_seconds"),
        (('approvers = ["U0BOB", "S0OPS"]', "approvers = []"), "nobody may approve it"),
        (('name = "dyno_run_command"', 'name = "dyno_run_command'), "not valid TOML"),
    ],
)
def test_file_errors_name_runbook_key_and_line(
    tmp_path: Path, change: tuple[str, str], expected: str
) -> None:
    path = tmp_path / "runbooks.toml"
    path.write_text(SAMPLE.replace(*change))
    with pytest.raises(ConfigError) as info:
        load_catalog(path)
    assert expected in str(info.value)


def test_only_the_default_file_may_be_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert load_catalog("runbooks.toml").runbooks == {}
    with pytest.raises(ConfigError, match="does not exist"):
        load_catalog(tmp_path / "ops-runbooks.toml")


def test_placeholders_cannot_choose_the_tool(tmp_path: Path) -> None:
    path = tmp_path / "runbooks.toml"
    path.write_text(SAMPLE.replace('name = "dyno_run_command"', 'name = "{app}"'))
    with pytest.raises(ConfigError, match="only allowed in prompt and runtime_params"):
        load_catalog(path)
