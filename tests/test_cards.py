"""The run card's wording: who asked for a run, and who only had one proposed to them."""

from __future__ import annotations

import time
from dataclasses import replace

from bot.render.cards import card
from bot.runs import RunRecord
from bot.runs.record import from_fields, to_fields
from bot.slack.blocks import message_link

# A pending /run request as the store keeps it; the card is drawn from what Redis returns.
STORED = {
    "runbook": "migrate",
    "description": "Run database migrations",
    "requester": "U0ALICE",
    "team": "T0TEAM",
    "channel": "C0OPS",
    "card_ts": "1700000000.000900",
    "values": '{"app": "shop-staging"}',
    "approvers": '["U0BOB"]',
    "needs_approval": "1",
    "state": "pending",
}


def migrate(*, proposed: bool = False, thread_ts: str = "", reply_to: str = "") -> RunRecord:
    record = from_fields("r1", STORED | {"expires_at": repr(time.time() + 600)})
    return replace(record, proposed=proposed, thread_ts=thread_ts, reply_to=reply_to)


def headline(record: RunRecord) -> str:
    blocks, _ = card(record)
    return str(blocks[0]["text"]["text"])


def test_a_run_command_card_says_who_requests_it() -> None:
    _, text = card(migrate())
    assert headline(migrate()) == "*<@U0ALICE>* requests runbook *migrate*: Run database migrations"
    assert text == "Runbook migrate requested by <@U0ALICE>: pending"


def test_a_proposal_card_says_the_copilot_proposes_it_in_reply_to_the_asker() -> None:
    proposal = migrate(proposed=True, thread_ts="1700000000.000100", reply_to="1700000000.000300")
    assert headline(proposal) == (
        "*Copilot proposes* runbook *migrate* in reply to <@U0ALICE> "
        "(<https://slack.com/archives/C0OPS/p1700000000000300"
        "?thread_ts=1700000000.000100&amp;cid=C0OPS|their message>): Run database migrations"
    )
    _, text = card(proposal)
    assert text == "Copilot proposes runbook migrate in reply to <@U0ALICE>: pending"
    assert "requests" not in headline(proposal) + text


def test_a_proposal_stored_without_its_message_has_no_link() -> None:
    # Records stored before proposals kept their message: no link, the same plain words.
    assert headline(migrate(proposed=True)) == (
        "*Copilot proposes* runbook *migrate* in reply to <@U0ALICE>: Run database migrations"
    )


def test_a_link_to_a_message_that_starts_its_thread_names_no_thread() -> None:
    assert message_link("C0OPS", "1700000000.000100", "1700000000.000100") == (
        "<https://slack.com/archives/C0OPS/p1700000000000100|message>"
    )
    assert message_link("D0DM", "1.5") == "<https://slack.com/archives/D0DM/p15|message>"


def test_the_asking_message_is_stored_with_the_request() -> None:
    proposal = migrate(proposed=True, reply_to="1700000000.000300")
    assert from_fields("r1", to_fields(proposal)) == proposal
    old = {k: v for k, v in to_fields(proposal).items() if k != "reply_to"}
    assert from_fields("r1", old).reply_to == ""
