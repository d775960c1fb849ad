"""The door of ``POST /slack/events``: only signed, fresh, well-formed requests get in.

Every kind of request Slack sends (message events, ``/run``, button clicks, App Home) is
sent forged in each way a forgery can look, and must get 401 and reach nothing: no Slack
call, no model call, no Redis state. A signed request of the same kind sent after them is
the observable end each test waits for. Malformed bodies and headers get 400 or 401 and one
log line, never a 500 or a traceback.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import pytest
from slack_bolt.request.async_request import AsyncBoltRequest

from bot.config import load_settings
from bot.errors import DeliveryRefused
from bot.runs import RunState
from bot.slack.inbound import Gate
from bot.state import keys
from tests.fakes import FakeInference, FakeSlack
from tests.rig import SIGNING_SECRET, BotUnderTest
from tests.scenarios import (
    ALICE,
    BOB,
    CAROL,
    CHANNEL,
    MALLORY,
    answer_in,
    card_of,
    ephemeral_texts,
    mention,
    pending_card,
    run,
    wait_answer,
)

JSON = "application/json"
FORM = "application/x-www-form-urlencoded"
SIX_MINUTES = 6 * 60
# Each way a request can fail the signature check: (name, headers for a body).
FORGERIES = [
    "unsigned",
    "other secret",
    "signed for another body",
    "stale",
    "from the future",
    "timestamp not a number",
    "no timestamp",
    "non-ASCII signature",
]


def signature(body: bytes, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    mac = hmac.new(secret.encode(), b"v0:" + timestamp.encode() + b":" + body, hashlib.sha256)
    return f"v0={mac.hexdigest()}"


def forged_headers(how: str, body: bytes, content_type: str) -> list[tuple[bytes, bytes]]:
    now = int(time.time())
    ts, sig = str(now), signature(body, str(now))
    if how == "unsigned":
        sig = ""
    elif how == "other secret":
        sig = signature(body, ts, "not-the-secret")
    elif how == "signed for another body":
        sig = signature(body + b" ", ts)
    elif how == "stale":
        ts = str(now - SIX_MINUTES)
        sig = signature(body, ts)
    elif how == "from the future":
        ts = str(now + SIX_MINUTES)
        sig = signature(body, ts)
    elif how == "timestamp not a number":
        ts = "yesterday"
    elif how == "no timestamp":
        ts = ""
    elif how == "non-ASCII signature":
        sig = "v0=" + "é" * 64
    headers = [(b"content-type", content_type.encode())]
    if ts:
        headers.append((b"x-slack-request-timestamp", ts.encode()))
    if sig:
        headers.append((b"x-slack-signature", sig.encode("latin-1")))
    return headers


async def send(bot: BotUnderTest, body: bytes, headers: list[tuple[bytes, bytes]]) -> int:
    response = await bot.http.post(f"{bot.url}/slack/events", content=body, headers=headers)
    return response.status_code


async def send_forged(bot: BotUnderTest, body: str, content_type: str) -> list[int]:
    raw = body.encode()
    return [await send(bot, raw, forged_headers(how, raw, content_type)) for how in FORGERIES]


async def state_keys(bot: BotUnderTest) -> set[str]:
    """What the bot keeps in Redis, without the heartbeats every process writes anyway."""
    found = {str(k) for k in await bot.runtime.redis.keys(f"{keys.PREFIX}*")}
    return {k for k in found if not k.startswith((keys.heartbeat(""), keys.work("")))}


def event_body(event: dict[str, Any], event_id: str) -> str:
    return json.dumps(
        {"type": "event_callback", "team_id": "T0TEAM", "event_id": event_id, "event": event}
    )


def command_body(slack: FakeSlack, text: str, user: str) -> str:
    return urlencode(
        {
            "command": "/run",
            "text": text,
            "user_id": user,
            "team_id": "T0TEAM",
            "channel_id": CHANNEL,
            "response_url": slack.response_url(f"cmd-{user}"),
        }
    )


def click_body(slack: FakeSlack, action_id: str, value: str, user: str) -> str:
    payload = {
        "type": "block_actions",
        "user": {"id": user, "team_id": "T0TEAM"},
        "team": {"id": "T0TEAM"},
        "channel": {"id": CHANNEL},
        "response_url": slack.response_url(f"click-{user}"),
        "actions": [{"action_id": action_id, "value": value, "type": "button"}],
    }
    return urlencode({"payload": json.dumps(payload)})


def home_opened(user: str) -> dict[str, Any]:
    return {"type": "app_home_opened", "user": user, "tab": "home", "event_ts": "1.1"}


# -- forged and stale requests: 401, and nothing reached --------------------------------------


async def test_forged_message_events_are_refused_before_anything_is_queued(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    """The fast path's own check: message events never reach Bolt over HTTP."""
    before = await state_keys(bot)
    for n, how in enumerate(FORGERIES):
        raw = event_body(mention("forged", f"10.{n}"), f"EvF{n}").encode()
        assert await send(bot, raw, forged_headers(how, raw, JSON)) == 401, how
    assert await state_keys(bot) == before  # nothing queued, deduped or marked active

    inference.reply_text("Only this one.")
    assert (await bot.event(mention("signed", "20.1"))).status_code == 200
    await wait_answer(slack, CHANNEL, "20.1", "Only this one.")
    assert len(inference.chat_requests) == 1
    assert all(answer_in(slack, CHANNEL, f"10.{n}") == "" for n in range(len(FORGERIES)))


async def test_forged_run_commands_are_refused(act: BotUnderTest, slack: FakeSlack) -> None:
    before = await state_keys(act)
    statuses = await send_forged(act, command_body(slack, "migrate app=shop-production", BOB), FORM)
    assert statuses == [401] * len(FORGERIES)
    assert await state_keys(act) == before

    await run(act, slack, "migrate app=shop-staging", user=ALICE)
    await slack.wait_for(lambda s: bool(s.messages(CHANNEL)))
    assert len(slack.messages(CHANNEL)) == 1  # the signed request's card only
    assert "shop-production" not in json.dumps(card_of(slack).blocks)
    assert slack.responses_to(f"cmd-{BOB}") == []
    assert [r.runbook for r in await act.runtime.requests.recent()] == ["migrate"]


async def test_forged_button_clicks_change_nothing(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    request = await pending_card(act, slack)
    statuses = await send_forged(act, click_body(slack, "copilot_approve", request, BOB), FORM)
    assert statuses == [401] * len(FORGERIES)

    # A signed click of someone who may not approve: its refusal is the observable end.
    signed = click_body(slack, "copilot_approve", request, MALLORY)
    assert (await act.post(signed, FORM)).status_code == 200
    await slack.wait_for(lambda s: bool(s.responses_to(f"click-{MALLORY}")))
    record = await act.runtime.requests.get(request)
    assert record is not None and record.state is RunState.PENDING
    assert ephemeral_texts(slack, BOB) == ""
    assert inference.agent_requests == []
    audit = await act.runtime.redis.xrange(keys.audit_log())
    assert [fields for _, fields in audit if fields.get("user") == BOB] == []


async def test_forged_app_home_opened_publishes_nothing(
    act: BotUnderTest, slack: FakeSlack
) -> None:
    statuses = await send_forged(act, event_body(home_opened(BOB), "EvHome"), JSON)
    assert statuses == [401] * len(FORGERIES)

    assert (await act.event(home_opened(CAROL))).status_code == 200
    await slack.wait_for(lambda s: CAROL in s.home_views)
    assert [c.params.get("user_id") for c in slack.calls_to("views.publish")] == [CAROL]


async def test_bolt_checks_signatures_on_its_own(act: BotUnderTest, slack: FakeSlack) -> None:
    """Behind the gate, Bolt verifies again: requests handed to it unsigned or stale are
    refused (this fails if ``request_verification_enabled`` is turned off)."""
    request = await pending_card(act, slack)
    bodies = [
        (command_body(slack, "migrate app=shop-production", BOB), FORM),
        (click_body(slack, "copilot_approve", request, BOB), FORM),
        (event_body(home_opened(BOB), "EvB1"), JSON),
        (event_body(mention("to bolt", "30.1"), "EvB2"), JSON),
    ]
    stale = str(int(time.time()) - SIX_MINUTES)
    for body, content_type in bodies:
        for headers in (
            {"content-type": content_type},
            {
                "content-type": content_type,
                "x-slack-request-timestamp": stale,
                "x-slack-signature": signature(body.encode(), stale),
            },
        ):
            response = await act.runtime.bolt.async_dispatch(
                AsyncBoltRequest(body=body, headers=headers)
            )
            assert response.status == 401, body[:40]
    # The same Bolt takes a signed request: its effect is the observable end.
    now = str(int(time.time()))
    body = click_body(slack, "copilot_approve", request, MALLORY)
    signed = {"content-type": FORM, "x-slack-request-timestamp": now}
    signed["x-slack-signature"] = signature(body.encode(), now)
    response = await act.runtime.bolt.async_dispatch(AsyncBoltRequest(body=body, headers=signed))
    assert response.status == 200
    await slack.wait_for(lambda s: bool(s.responses_to(f"click-{MALLORY}")))
    record = await act.runtime.requests.get(request)
    assert record is not None and record.state is RunState.PENDING
    assert BOB not in slack.home_views and slack.responses_to(f"cmd-{BOB}") == []
    assert answer_in(slack, CHANNEL, "30.1") == ""


# -- malformed requests: 400 or 401, one log line, never a 500 -------------------------------

GOOD_EVENT = {"type": "event_callback", "team_id": "T0TEAM", "event": home_opened(BOB)}
GOOD_CLICK = {
    "type": "block_actions",
    "user": {"id": BOB, "team_id": "T0TEAM"},
    "actions": [{"action_id": "copilot_approve", "value": "x"}],
}


def as_json(value: Any) -> bytes:
    return json.dumps(value).encode()


def payload(value: Any) -> bytes:
    return urlencode({"payload": value if isinstance(value, str) else json.dumps(value)}).encode()


MALFORMED_BODIES: list[tuple[str, bytes, str]] = [
    ("broken JSON", b'{"type": "event_callback", ', JSON),
    ("a JSON list", b"[1, 2]", JSON),
    ("JSON null", b"null", JSON),
    ("a JSON string", b'"event_callback"', JSON),
    ("JSON nested beyond reading", b"[" * 100_000 + b"]" * 100_000, JSON),
    ("not UTF-8", b'{"type": "event_callback", "event": {"text": "\xff"}}', JSON),
    ("a form sent as JSON", b"command=%2Frun&text=migrate", JSON),
    ("event is a list", as_json({**GOOD_EVENT, "event": []}), JSON),
    ("event is a string", as_json({**GOOD_EVENT, "event": "message"}), JSON),
    ("event is a number", as_json({**GOOD_EVENT, "event": 5}), JSON),
    ("no event", as_json({"type": "event_callback", "team_id": "T0TEAM"}), JSON),
    ("event type a list", as_json({**GOOD_EVENT, "event": {"type": ["message"]}}), JSON),
    (
        "message event with a numeric user",
        as_json({**GOOD_EVENT, "event": {**mention("x", "1.1"), "user": 7}}),
        JSON,
    ),
    ("team is a number", as_json({**GOOD_EVENT, "team": 5}), JSON),
    ("enterprise is a list", as_json({**GOOD_EVENT, "enterprise": ["E1"]}), JSON),
    ("authorizations of strings", as_json({**GOOD_EVENT, "authorizations": ["x"]}), JSON),
    ("authorizations not a list", as_json({**GOOD_EVENT, "authorizations": 1}), JSON),
    ("payload is not JSON", payload("{not json"), FORM),
    ("payload is a list", payload([]), FORM),
    ("payload is a string", payload('"block_actions"'), FORM),
    ("no actions", payload({**GOOD_CLICK, "actions": []}), FORM),
    ("actions of strings", payload({**GOOD_CLICK, "actions": ["copilot_approve"]}), FORM),
    ("actions an object", payload({**GOOD_CLICK, "actions": {"action_id": "x"}}), FORM),
    ("an action without action_id", payload({**GOOD_CLICK, "actions": [{"value": "x"}]}), FORM),
    ("action_id a number", payload({**GOOD_CLICK, "actions": [{"action_id": 1}]}), FORM),
    ("user is a string", payload({**GOOD_CLICK, "user": BOB}), FORM),
    ("user id a list", payload({**GOOD_CLICK, "user": {"id": [BOB]}}), FORM),
    ("view is a string", payload({"type": "view_submission", "view": "v"}), FORM),
    ("channel id an object", payload({**GOOD_CLICK, "channel": {"id": {}}}), FORM),
]


@pytest.fixture
def log_records(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    caplog.set_level(logging.INFO)
    return caplog


def refusals(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if "refused a request to /slack/events" in r.getMessage()]


def assert_no_errors(caplog: pytest.LogCaptureFixture) -> None:
    bad = [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info]
    assert bad == [], [r.getMessage() for r in bad]


@pytest.mark.parametrize(
    ("name", "body", "content_type"), MALFORMED_BODIES, ids=[c[0] for c in MALFORMED_BODIES]
)
async def test_malformed_bodies_get_400_and_one_line(
    act: BotUnderTest,
    log_records: pytest.LogCaptureFixture,
    name: str,
    body: bytes,
    content_type: str,
) -> None:
    ts = str(int(time.time()))
    headers = [
        (b"content-type", content_type.encode()),
        (b"x-slack-request-timestamp", ts.encode()),
        (b"x-slack-signature", signature(body, ts).encode()),
    ]
    assert await send(act, body, headers) == 400
    assert len(refusals(log_records)) == 1
    assert_no_errors(log_records)


MALFORMED_HEADERS: list[tuple[str, bytes, bytes]] = [
    ("timestamp in full-width digits", "１７００００００００".encode(), b""),
    ("timestamp far too long", b"9" * 40, b""),
    ("negative timestamp", b"-1", b""),
    ("timestamp with a letter", b"17000000O0", b""),
    ("signature of another scheme", b"", b"v1=abc"),
    ("signature cut short", b"", b"v0=abc"),
    ("signature in latin-1", b"", "v0=ÿ".encode("latin-1")),
    ("signature in UTF-8", b"", "v0=✓".encode()),
    ("signature with spaces", b"", b"v0 = abc"),
]


@pytest.mark.parametrize(
    ("name", "timestamp", "sig"), MALFORMED_HEADERS, ids=[c[0] for c in MALFORMED_HEADERS]
)
async def test_malformed_headers_get_401_and_one_line(
    act: BotUnderTest,
    slack: FakeSlack,
    log_records: pytest.LogCaptureFixture,
    name: str,
    timestamp: bytes,
    sig: bytes,
) -> None:
    for body, content_type in (
        (event_body(mention("hello", "40.1"), "EvM"), JSON),
        (command_body(slack, "migrate app=shop-staging", BOB), FORM),
    ):
        raw = body.encode()
        ts = timestamp or str(int(time.time())).encode()
        headers = [
            (b"content-type", content_type.encode()),
            (b"x-slack-request-timestamp", ts),
            (b"x-slack-signature", sig or signature(raw, ts.decode("utf-8")).encode()),
        ]
        assert await send(act, raw, headers) == 401
    assert len(refusals(log_records)) == 2
    assert_no_errors(log_records)


async def test_odd_but_signed_requests_are_served_not_failed(
    act: BotUnderTest, slack: FakeSlack, log_records: pytest.LogCaptureFixture
) -> None:
    """A charset Python does not know, or a type nobody listens for, is no reason for a 500."""
    body = event_body(home_opened(CAROL), "EvOdd").encode()
    ts = str(int(time.time()))
    headers = [
        (b"content-type", b"application/json; charset=klingon"),
        (b"x-slack-request-timestamp", ts.encode()),
        (b"x-slack-signature", signature(body, ts).encode()),
    ]
    assert await send(act, body, headers) == 200
    await slack.wait_for(lambda s: CAROL in s.home_views)
    unknown = json.dumps({"type": "something_new", "team_id": "T0TEAM"})
    assert (await act.post(unknown, JSON)).status_code == 404  # Bolt: nobody listens
    assert (await act.post("", JSON)).status_code == 404
    assert_no_errors(log_records)


async def test_an_unreadable_body_gets_400(
    act: BotUnderTest, log_records: pytest.LogCaptureFixture
) -> None:
    """A gzip body that is not gzip fails while aiohttp reads it: 400, not a 500."""
    body = b"definitely not gzip"
    ts = str(int(time.time()))
    headers = {
        "content-type": JSON,
        "content-encoding": "gzip",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": signature(body, ts),
    }
    response = await act.http.post(f"{act.url}/slack/events", content=body, headers=headers)
    assert response.status_code == 400
    assert len(refusals(log_records)) == 1
    assert_no_errors(log_records)


# -- start-up: no HTTP endpoint without a signing secret ------------------------------------


@pytest.mark.parametrize("secret", ["", "   ", "\t\n"], ids=["empty", "spaces", "whitespace"])
def test_a_blank_signing_secret_stops_http_start_up_with_one_line(
    tmp_path: Path, secret: str
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INFERENCE_"))}
    env.update(
        SLACK_BOT_TOKEN="xoxb-1",
        INFERENCE_KEY="inf-1",
        SLACK_SIGNING_SECRET=secret,
        PYTHONPATH=str(Path(__file__).resolve().parent.parent),
    )
    result = subprocess.run(
        [sys.executable, "-m", "bot"],
        env=env,
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 2
    [line] = result.stderr.strip().splitlines()
    assert "SLACK_SIGNING_SECRET is not set or is blank" in line
    assert "Signing Secret" in line and "Traceback" not in result.stderr


def test_socket_mode_does_not_need_the_signing_secret() -> None:
    settings = load_settings(
        _env_file=None,
        slack_bot_token="xoxb-1",
        inference_key="inf-1",
        slack_app_token="xapp-1",
        slack_signing_secret="  ",
    )
    settings.require("serve")
    assert settings.slack_signing_secret is None


def test_the_gate_admits_nothing_without_a_secret() -> None:
    body = b'{"type": "url_verification", "challenge": "c"}'
    now = str(int(time.time()))
    headers = {"X-Slack-Request-Timestamp": now, "X-Slack-Signature": signature(body, now, " ")}
    with pytest.raises(DeliveryRefused) as refused:
        Gate(" ").admit(headers, body)
    assert refused.value.status == 401
