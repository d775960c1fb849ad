"""Foreign text made safe to post: pings and disguised links made inert, and a stream masked
so that a secret split across pieces, at any point, never shows."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest

from bot.redact import MASK
from bot.text import when
from bot.untrusted import ZERO_WIDTH_SPACE, SafeStream, neutralise, safe_stream, shown

ZW = ZERO_WIDTH_SPACE


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("ping <!channel> now", f"ping <{ZW}!channel> now"),
        ("<!here> <!everyone>", f"<{ZW}!here> <{ZW}!everyone>"),
        ("<!subteam^S0OPS|@ops> look", f"<{ZW}!subteam^S0OPS|@ops> look"),
        ("<!here|here>", f"<{ZW}!here|here>"),
        (
            "Log in at <https://evil.example|https://bank.example>.",
            "Log in at https://bank.example (https://evil.example).",
        ),
        ("<https://evil.example/x|click here>", "click here (https://evil.example/x)"),
        (
            "[https://bank.example](https://evil.example)",
            "https://bank.example (https://evil.example)",
        ),
        (
            "See [the docs](https://devcenter.heroku.com/x).",
            "See the docs (https://devcenter.heroku.com/x).",
        ),
        ("<https://devcenter.heroku.com|devcenter.heroku.com>", "https://devcenter.heroku.com"),
        (
            "<mailto:a@evil.example|support@bank.example>",
            "support@bank.example (mailto:a@evil.example)",
        ),
        # A date token with a link in it is a link in disguise.
        (
            "<!date^1392734382^{date}^https://evil.example|today>",
            f"<{ZW}!date^1392734382^{{date}}^https://evil.example|today>",
        ),
    ],
)
def test_pings_and_disguised_links_are_made_inert(raw: str, expected: str) -> None:
    assert neutralise(raw) == expected
    assert neutralise(expected) == expected  # once is enough: no second pass changes it


@pytest.mark.parametrize(
    "text",
    [
        "Ask <@U0ALICE> in <#C0OPS|ops> or <#C0OPS>.",
        f"Expires {when(1_800_000_000)}",
        "See <https://devcenter.heroku.com/articles/x>, `a < b`, arr[0] and [x](not-a-url).",
        "```\nif a<b and c>d: pass\n```",
    ],
)
def test_mentions_dates_plain_links_and_code_stay(text: str) -> None:
    assert neutralise(text) == text


SAMPLES = [
    ("Connect with postgres://app:hunter2hunter2@db.example.com/shop then go.", "hunter2"),
    ('Set PASSWORD="correct horse battery" and restart.', "horse"),
    ("The password: secret_2024 is a secret name too.", "_2024"),
    ("Send Authorization: Basic YWxpY2U6aHVudGVyMg== to it.", "YWxpY2U6"),
    ("Use {'user': 'app', 'password': 'hunter2 hunter2'} there.", "hunter2"),
    ("Tokens: xoxe-1-My0xLTEyMzQ1Njc4OTAtYWJjZA and sk_live_4eC39HqLyjWDarjtT1zdp7dc.", "My0x"),
    (f"JWT eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.{'s' * 20} ok", "eyJzdWIi"),
    (
        "k:\n-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg 4f\nAwEHoUQDQg\n"
        "-----END EC PRIVATE KEY-----\nok",
        "MHcC",
    ),
    ("-----BEGIN PRIVATE KEY-----\nMIIEvQIBAD ANBgkqhkiG9w0B\n(truncated)", "MIIEvQ"),
    ("Hi <!channel>, log in at <https://evil.example|https://bank.example> today.", "<!channel>"),
    ("Read [the bank's page](https://evil.example/login) now", "](https"),
]


@pytest.mark.parametrize(("text", "secret"), SAMPLES)
def test_a_stream_split_at_any_two_points_shows_what_the_whole_text_shows(
    text: str, secret: str
) -> None:
    whole = shown(text)
    assert secret not in whole
    for i in range(len(text) + 1):
        for j in range(i, len(text) + 1):
            stream = SafeStream()
            out = [stream.feed(text[:i]), stream.feed(text[i:j]), stream.feed(text[j:])]
            assert "".join(out) + stream.flush() == whole, (i, j, out)


@pytest.mark.parametrize(("text", "secret"), SAMPLES)
def test_a_stream_of_single_characters_never_shows_the_secret(text: str, secret: str) -> None:
    stream = SafeStream()
    shown_so_far = ""
    for char in text:
        shown_so_far += stream.feed(char)
        assert secret not in shown_so_far
    assert shown_so_far + stream.flush() == shown(text)


def test_only_a_short_tail_is_held_back() -> None:
    stream = SafeStream()
    assert stream.feed("Run the migration, then connect with postgres://app:hunt") == (
        "Run the migration, then connect with "
    )
    assert stream.feed("er2hunter2@db/shop and check") == f"postgres://app:{MASK}@db/shop and "
    assert stream.flush() == "check"


def test_a_long_line_of_brackets_and_secret_words_still_streams() -> None:
    stream = SafeStream()
    out = "".join(stream.feed("if latency < 50 ms the token key [is] fine, ") for _ in range(50))
    assert len(out) > 40 * 45  # only the tail is held back, not the line


def test_a_secret_waiting_for_its_value_is_held_until_the_value_comes() -> None:
    stream = SafeStream()
    assert stream.feed("Set REDIS_PASSWORD = ") == "Set "
    assert stream.feed("s3cr3tvalue and go") == f"REDIS_PASSWORD = {MASK} and "


async def pieces(*texts: str, error: Exception | None = None) -> AsyncIterator[str]:
    for text in texts:
        await asyncio.sleep(0)
        yield text
    if error is not None:
        raise error


async def collect(source: AsyncIterator[str], into: list[str]) -> None:
    async for text in safe_stream(source):
        into.append(text)


async def test_safe_stream_shows_the_tail_masked_when_the_source_fails() -> None:
    got: list[str] = []
    with pytest.raises(RuntimeError):
        await collect(pieces("Set ", "PASSWORD=hunter22", error=RuntimeError()), got)
    assert got == ["Set ", f"PASSWORD={MASK}"]


async def test_safe_stream_shows_the_tail_masked_at_the_end() -> None:
    got: list[str] = []
    await collect(pieces("Use DB_PASS=", "abc123"), got)
    assert got == ["Use ", f"DB_PASS={MASK}"]


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("<https://evil.example|the\nbank>", f"<{ZW}https://evil.example|the\nbank>"),
        ("[the\nbank](https://evil.example)", f"[the\nbank]{ZW}(https://evil.example)"),
        ("[the [real] bank](https://evil.example)", f"[the [real] bank]{ZW}(https://evil.example)"),
    ],
)
def test_a_labelled_link_that_cannot_be_turned_round_is_broken(raw: str, expected: str) -> None:
    assert neutralise(raw) == expected


def test_a_link_split_far_from_its_start_is_still_inert() -> None:
    label = "the bank " * 60  # longer than a link is held back for
    stream = SafeStream()
    out = stream.feed(f"<https://evil.example|{label}") + stream.feed("here>") + stream.flush()
    assert out.startswith(f"<{ZW}https://evil.example|")
