"""The runbooks file and /run input: validation, line numbers, rendering."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.errors import ConfigError, RequestRefused
from bot.runbooks import Catalog, Param, agent_body, load_catalog
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


# -- parameter values ----------------------------------------------------------------------

FREE = Param()  # neither choices nor pattern: the default rules
WORD = Param(pattern=r"^\w+$")
DIGITS = Param(pattern=r"^\d+$")


@pytest.mark.parametrize(
    ("param", "value", "why"),
    [
        (FREE, "--force", "may not start with - or /"),
        (FREE, "-rf", "may not start with - or /"),
        (FREE, "/etc/passwd", "may not start with - or /"),
        (FREE, "../x", "may not contain .."),
        (FREE, "releases/../../etc/shadow", "may not contain .."),
        (FREE, "http://evil.example/x.sh", "may not contain ://"),
        (FREE, "HTTPS://evil.example", "may not contain ://"),
        (FREE, "postgres://u:p@db/x", "may not contain ://"),
        (FREE, "shop; rm -rf /", "may use only letters, digits"),
        (FREE, "\u0430pp", "printable ASCII"),  # Cyrillic 'а'
        (WORD, "\u0430pp", "printable ASCII"),
        (WORD, "shop\u200bstaging", "printable ASCII"),  # a zero-width space
        (DIGITS, "\u0661\u0662\u0663", "printable ASCII"),  # Arabic-Indic digits
        (DIGITS, "\uff11\uff12", "printable ASCII"),  # full-width digits
        (DIGITS, "12\n", "printable ASCII"),
        (Param(pattern=r"^.+$"), "ok\x1b[2Jcleared", "printable ASCII"),
    ],
)
def test_hostile_values_are_refused(param: Param, value: str, why: str) -> None:
    problem = param.problem(value)
    assert problem is not None and why in problem


@pytest.mark.parametrize(
    ("param", "value"),
    [
        (FREE, "shop-staging"),
        (FREE, "v1.2.3"),
        (FREE, "releases/v42"),
        (FREE, "db:5432"),
        (FREE, "ops@example.com"),
        (FREE, "KEY=value+1"),
        (WORD, "app"),
        (DIGITS, "123"),
    ],
)
def test_ordinary_values_pass(param: Param, value: str) -> None:
    assert param.problem(value) is None


def test_hostile_values_are_refused_from_run(catalog: Catalog) -> None:
    with pytest.raises(RequestRefused, match="printable ASCII"):
        parse("logs app=sh\u043ep", catalog)  # Cyrillic 'о'
    with pytest.raises(RequestRefused, match="printable ASCII"):
        parse("logs app=shop lines=\u0661\u0662", catalog)


def test_patterns_cannot_turn_unicode_matching_back_on(tmp_path: Path) -> None:
    path = tmp_path / "runbooks.toml"
    path.write_text(SAMPLE.replace('pattern = "^[a-z0-9-]+$"', 'pattern = "(?u)^\\\\w+$"'))
    with pytest.raises(ConfigError, match="not a valid regular expression"):
        load_catalog(path)


def test_an_optional_parameter_a_placeholder_needs_must_have_a_default(tmp_path: Path) -> None:
    path = tmp_path / "runbooks.toml"
    path.write_text(SAMPLE.replace('default = "200"\n', ""))
    with pytest.raises(ConfigError) as info:
        load_catalog(path)
    message = str(info.value)
    assert f"{path}:35: runbook 'logs', parameter 'lines'" in message  # required = false
    assert "give it a default, or make it required" in message
    # An optional parameter no placeholder uses may go without a default.
    unused = SAMPLE.replace('default = "200"\n', "").replace("last {lines} log", "last log")
    path.write_text(unused)
    assert load_catalog(path).runbooks["logs"].params["lines"].default is None
