import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.pacing import paced


async def _source(pieces: list[tuple[float, str]]) -> AsyncIterator[str]:
    for pause, text in pieces:
        await asyncio.sleep(pause)
        yield text


async def test_tokens_are_coalesced_and_nothing_is_lost() -> None:
    pieces = [(0.001, f"t{i} ") for i in range(100)]
    batches = [b async for b in paced(_source(pieces), interval=0.05)]
    assert "".join(batches) == "".join(text for _, text in pieces)
    assert len(batches) < 30  # a batch per interval, not one call per token


async def test_first_text_is_not_held_back() -> None:
    batches = _source([(0, "first"), (1.0, "second")])
    gen = paced(batches, interval=10.0)
    first = await asyncio.wait_for(anext(gen), 0.5)
    assert first == "first"
    await gen.aclose()


async def test_pending_text_is_flushed_while_the_model_is_quiet() -> None:
    # "b" arrives right after "a", then the model pauses: "b" must not wait for "c".
    gen = paced(_source([(0, "a"), (0.01, "b"), (5.0, "c")]), interval=0.1)
    assert await anext(gen) == "a"
    assert await asyncio.wait_for(anext(gen), 1.0) == "b"
    await gen.aclose()


async def test_pending_text_is_delivered_before_an_error() -> None:
    async def failing() -> AsyncIterator[str]:
        yield "a"
        yield "b"
        raise RuntimeError("boom")

    got: list[str] = []

    async def consume() -> None:
        async for batch in paced(failing(), interval=10.0):
            got.append(batch)

    with pytest.raises(RuntimeError):
        await consume()
    assert "".join(got) == "ab"
