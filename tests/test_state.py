"""The small Redis stores on their own: Slack call budgets and the user-group cache."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import redis.asyncio as aioredis

from bot.state import connect, keys
from bot.state.budget import BudgetStore, Rate
from bot.state.usergroups import UserGroupCache

# One call a second, three at once.
RATE = Rate(60, 3)


@pytest.fixture
async def client(redis_url: str) -> AsyncIterator[aioredis.Redis]:
    client = connect(redis_url)
    yield client
    await client.aclose()


async def test_a_budget_lets_a_burst_through_then_spaces_calls(client: aioredis.Redis) -> None:
    budget = BudgetStore(client, "T0TEAM")
    waits = [await budget.reserve("chat.update", "", RATE) for _ in range(4)]
    assert waits[:3] == [0.0, 0.0, 0.0]
    assert waits[3] == pytest.approx(1.0, abs=0.1)


async def test_a_refused_reservation_takes_nothing(client: aioredis.Redis) -> None:
    budget = BudgetStore(client, "T0TEAM")
    for _ in range(4):
        await budget.reserve("chat.update", "", RATE)
    assert await budget.reserve("chat.update", "", RATE, max_wait=0.5) is None
    # The next slot is still the one the refused call would have had.
    assert await budget.reserve("chat.update", "", RATE) == pytest.approx(2.0, abs=0.1)


async def test_each_scope_and_workspace_has_its_own_budget(client: aioredis.Redis) -> None:
    budget = BudgetStore(client, "T0TEAM")
    for _ in range(3):
        await budget.reserve("chat.postMessage", "C1", RATE)
    assert await budget.reserve("chat.postMessage", "C1", RATE, max_wait=0) is None
    assert await budget.reserve("chat.postMessage", "C2", RATE, max_wait=0) == 0.0
    other = BudgetStore(client, "T0OTHER")
    assert await other.reserve("chat.postMessage", "C1", RATE, max_wait=0) == 0.0


async def test_a_block_holds_the_method_and_never_shortens(client: aioredis.Redis) -> None:
    budget = BudgetStore(client, "T0TEAM")
    await budget.block("chat.appendStream", "", RATE, 5)
    await budget.block("chat.appendStream", "", RATE, 1)
    assert await budget.reserve("chat.appendStream", "", RATE) == pytest.approx(5.0, abs=0.1)
    assert await budget.reserve("chat.update", "", RATE) == 0.0


async def test_group_members_are_cached_for_a_while(client: aioredis.Redis) -> None:
    groups = UserGroupCache(client)
    assert await groups.get("S0OPS") is None
    await groups.put("S0OPS", {"U0CAROL", "U0DAVE"})
    await groups.put("S0EMPTY", set())
    assert await groups.get("S0OPS") == {"U0CAROL", "U0DAVE"}
    assert await groups.get("S0EMPTY") == set()  # known to be empty, not unknown
    ttl = await client.ttl(keys.usergroup_members("S0OPS"))
    assert 0 < ttl <= keys.USERGROUP_TTL
