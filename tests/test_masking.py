"""Masking everywhere and no pings, end to end: whatever the model, a tool or the agent says
reaches the fake Slack masked and inert, in every call, however it was streamed or cut."""

from __future__ import annotations

import io
import json
import logging
from collections.abc import Iterator

import pytest

from bot import logs
from bot.redact import MASK
from bot.slack.progress import RESULT_INLINE_CHARS
from bot.untrusted import ZERO_WIDTH_SPACE
from tests.fakes import FakeInference, FakeSlack
from tests.fakes.inference import agent_completion, agent_tool_call, agent_tool_result
from tests.rig import BotUnderTest
from tests.scenarios import (
    BOB,
    CHANNEL,
    card_text,
    channel_message,
    click,
    mention,
    pending_card,
    run_display,
    wait_answer,
)

ZW = ZERO_WIDTH_SPACE
# Where a cut made before masking would fall inside this password, the piece left over is no
# longer a URL with a password: no rule can recognise it.
URL = "postgres://u:Sup3rS3cretPassw0rd@db.internal:5432/shop"
LEAK = "Sup3r"


def calls_sent(slack: FakeSlack) -> str:
    """Every Web API call's parameters and every message sent to a response_url."""
    calls = [c.params for c in slack.calls]
    return json.dumps([calls, slack.responses], ensure_ascii=False, default=str)


def everything_sent(slack: FakeSlack) -> str:
    files = [(f.content or b"").decode() for f in slack.files.values()]
    return calls_sent(slack) + json.dumps(files, ensure_ascii=False)


async def test_a_secret_split_across_streamed_chunks_never_reaches_slack_or_history(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    # Each chunk reaches the bot after the one before was shown: nothing joins them for it.
    inference.reply_pieces(
        ["Connect with postgres://app:hunt", "er2hunt", "er2@db.example.com/shop and migrate."],
        delay=0.2,
    )
    await bot.event(mention("how do I connect?", "100.1"))
    posted = f"Connect with postgres://app:{MASK}@db.example.com/shop and migrate."
    await wait_answer(slack, CHANNEL, "100.1", posted)
    await slack.wait_for(lambda s: s.count("chat.stopStream") == 1)
    assert slack.count("chat.appendStream") >= 1  # it did stream in pieces
    sent = everything_sent(slack)
    assert "hunt" not in sent
    assert "er2@" not in sent

    # The thread's history holds the answer as posted: a follow-up sends it masked.
    inference.reply_text("Yes.")
    await bot.event(channel_message("and then?", "100.5", thread_ts="100.1"))
    await wait_answer(slack, CHANNEL, "100.1", posted + "Yes.")
    history = json.dumps(inference.chat_requests[1].json["messages"], ensure_ascii=False)
    assert posted in history
    assert "hunt" not in history


@pytest.mark.parametrize("streaming", [True, False], ids=["native-stream", "edited-message"])
async def test_pings_and_disguised_links_in_an_answer_are_inert(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference, streaming: bool
) -> None:
    if not streaming:
        slack.refuse_streaming(CHANNEL)
    inference.reply_text(
        "Heads up <!channel>: log in at <https://evil.example|https://bank.example>, "
        "then tell <!subteam^S0OPS|@ops> and <!here>.",
        pieces=11,
    )
    await bot.event(mention("where do I log in?", "200.1"))
    posted = (
        f"Heads up <{ZW}!channel>: log in at https://bank.example (https://evil.example), "
        f"then tell <{ZW}!subteam^S0OPS|@ops> and <{ZW}!here>."
    )
    await wait_answer(slack, CHANNEL, "200.1", posted)
    sent = calls_sent(slack)
    for control in ("<!channel>", "<!subteam", "<!here>", "|https://bank.example>"):
        assert control not in sent
    if not streaming:  # the text fallback next to the blocks says the same
        fallbacks = [c.params.get("text", "") for c in slack.calls_to("chat.update")]
        assert posted in fallbacks


async def test_run_progress_masks_before_the_inline_cut_and_pings_no_one(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    shown_as = "Tool 'dyno_run_command' returned result: "  # what the fake Agents API adds
    filler = "<!everyone> migrations: " + "0001_initial applied; " * 100
    output = filler[: RESULT_INLINE_CHARS - 21 - len(shown_as)] + " " + URL + "\n" + "more\n" * 200
    call = agent_tool_call("c1", "dyno_run_command", json.dumps({"cmd": "echo <!here>"}))
    inference.agent_events(
        [
            ("message", agent_completion("Running.", [call], finish_reason="tool_calls")),
            ("message", agent_tool_result("c1", "dyno_run_command", output)),
            ("message", agent_completion("Done: <https://evil.example|https://heroku.com/shop>")),
            ("done", "[DONE]"),
        ]
    )
    rid = await pending_card(act, slack)
    await click(act, slack, "copilot_approve", rid, BOB)
    await slack.wait_for(lambda s: "Succeeded" in card_text(s), timeout=10)
    await slack.wait_for(lambda s: bool(s.files))

    assert LEAK not in everything_sent(slack)
    [upload] = slack.files.values()
    assert f"postgres://u:{MASK}@db.internal:5432/shop" in (upload.content or b"").decode()
    sent = calls_sent(slack)
    for control in ("<!everyone>", "<!here>", "|https://heroku.com/shop>"):
        assert control not in sent
    assert "https://heroku.com/shop (https://evil.example)" in run_display(slack)


@pytest.fixture
def logged() -> Iterator[io.StringIO]:
    """What the bot logs, through the formatter it serves with."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(logs.JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield stream
    root.removeHandler(handler)


async def approve_run_of(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference, event: tuple[str, str]
) -> None:
    inference.agent_events([event, ("message", agent_completion("ok")), ("done", "[DONE]")])
    rid = await pending_card(bot, slack)
    await click(bot, slack, "copilot_approve", rid, BOB)
    await slack.wait_for(lambda s: "Failed" in card_text(s) or "Succeeded" in card_text(s))


async def test_an_agent_error_with_a_secret_at_the_cut_is_masked_first(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    await approve_run_of(
        act, slack, inference, ("error", json.dumps({"message": "x" * 179 + " " + URL}))
    )
    assert "postgres://u:" in run_display(slack)  # shown, cut, and masked
    assert LEAK not in everything_sent(slack)


async def test_an_unknown_agent_event_is_masked_before_it_is_cut_to_show_or_log(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference, logged: io.StringIO
) -> None:
    # Shown cut at 200 characters, logged cut at 500: a password at each cut.
    data = {"object": "agent.mystery", "a": "y" * 140 + " " + URL, "b": "z" * 235 + " " + URL}
    await approve_run_of(act, slack, inference, ("message", json.dumps(data)))
    assert "postgres://u:" in run_display(slack)
    assert LEAK not in everything_sent(slack)
    assert logged.getvalue().count("postgres://u:") == 2
    assert LEAK not in logged.getvalue()


async def test_an_inference_error_body_with_a_secret_at_the_cut_is_masked_first(
    bot: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.reply_error(400, {"error": {"message": "z" * 179 + " " + URL}})
    await bot.event(mention("hello", "300.1"))
    await slack.wait_for(
        lambda s: "Heroku Inference refused" in "".join(s.thread_bodies(CHANNEL, "300.1"))
    )
    assert "postgres://u:" in "".join(slack.thread_bodies(CHANNEL, "300.1"))
    assert LEAK not in everything_sent(slack)
