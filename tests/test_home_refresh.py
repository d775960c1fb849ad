"""App Home stays current: when a run request changes state, the tabs of the people it
concerns are published without their opening them, coalesced per person."""

from __future__ import annotations

import json
from typing import Any

from tests.fakes import FakeInference, FakeSlack
from tests.rig import BotUnderTest
from tests.scenarios import ALICE, BOB, CAROL, click, migrate_events, request_id, run


def tab(slack: FakeSlack, user: str) -> str:
    return json.dumps(slack.home_views.get(user, {}))


def publishes_to(slack: FakeSlack, user: str) -> list[Any]:
    return [c for c in slack.calls_to("views.publish") if c.params.get("user_id") == user]


async def test_a_request_redraws_its_approvers_home_and_a_decision_its_requesters(
    act: BotUnderTest, slack: FakeSlack
) -> None:
    await run(act, slack, "migrate app=shop-staging", user=ALICE)
    # Bob never opened his tab: it is published because the request waits for him.
    await slack.wait_for(lambda s: "shop-staging" in tab(s, BOB), timeout=10)
    assert "Waiting for your approval" in tab(slack, BOB)
    await slack.wait_for(lambda s: "shop-staging" in tab(s, CAROL), timeout=10)  # user group
    await slack.wait_for(lambda s: "shop-staging" in tab(s, ALICE), timeout=10)

    slack.home_views.pop(ALICE)
    await click(act, slack, "copilot_deny", request_id(slack), BOB)
    await slack.wait_for(lambda s: ":no_entry:" in tab(s, ALICE), timeout=10)
    assert "denied" in tab(slack, ALICE)
    # ...and Bob's list no longer shows it waiting.
    await slack.wait_for(lambda s: ":no_entry:" in tab(s, BOB), timeout=10)


async def test_a_burst_of_requests_is_fewer_publishes_than_changes(
    act: BotUnderTest, slack: FakeSlack
) -> None:
    apps = ["shop-staging", "shop-production"] * 2 + ["shop-staging"]
    for app in apps:
        await run(act, slack, f"migrate app={app}", user=ALICE)
    waiting = ":hourglass_flowing_sand: *migrate*"
    # Five requests, each a change on Alice's tab; it ends up showing all five...
    await slack.wait_for(lambda s: tab(s, ALICE).count(waiting) == len(apps), timeout=15)
    # ...in fewer publishes than changes.
    # Every publish the bot meant to make is made once nothing is left in flight.
    await slack.wait_for(lambda _: act.runtime.inflight.count == 0, timeout=15)
    assert 0 < len(publishes_to(slack, ALICE)) < len(apps)


async def test_an_approval_redraws_the_requesters_home_through_the_run(
    act: BotUnderTest, slack: FakeSlack, inference: FakeInference
) -> None:
    inference.agent_events(migrate_events())
    await run(act, slack, "migrate app=shop-staging", user=ALICE)
    await slack.wait_for(lambda s: "shop-staging" in tab(s, ALICE), timeout=10)
    slack.home_views.pop(ALICE)

    await click(act, slack, "copilot_approve", request_id(slack), BOB)
    # Alice never reopened her tab: it follows her request to its outcome.
    await slack.wait_for(lambda s: ":large_green_circle:" in tab(s, ALICE), timeout=15)
    assert "Your requests waiting for approval*\\n_Nothing here._" in tab(slack, ALICE)
