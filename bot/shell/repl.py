"""The shell's loop: read a line, hand it to the bot as Slack would, wait until it is quiet.

Waiting after each line keeps piped input in step with the bot (``/approve`` needs the card
the previous ``/run`` posted) and keeps the prompt from landing inside an answer. Only
``/stop`` is taken while the bot is busy: it is the stop button of what is in progress. The bot
is quiet when no listener is running, it has made no Slack call for a moment, and no run it
started or clicked for is still going.

A button command clicks the newest card on screen with that button. With none on screen
(another terminal posted it), it clicks for a request waiting in the store: ``waiting.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib
import sys
import threading
import time

from slack_bolt.request.async_request import AsyncBoltRequest

from bot.app import Runtime
from bot.errors import BotError
from bot.notices import describe
from bot.runs.states import RunState
from bot.shell import payloads
from bot.shell.console import Card, ConsoleSlack
from bot.shell.render import BUTTON_COMMANDS, Screen
from bot.shell.waiting import OFFERED, Offers, is_number

QUIET_SECONDS = 0.3
POLL_SECONDS = 0.05
_CLICKS = {command: action for action, command in BUTTON_COMMANDS.items()}

HELP = [
    "Type a question to ask it (follow-ups continue the conversation), or:",
    "  /run help · /run <runbook> key=value …   what Slack's /run does",
    "  /approve · /deny · /withdraw · /start · /cancel [id]   click a card's button",
    "      no card on screen: /approve, /deny, /withdraw, /start act on the one request",
    "      waiting for you, or list several: /approve 2 picks one (or an id prefix)",
    "  /as U0BOB   be someone else (approvers need their Slack user id)",
    "  /stop       the stop button: stop the answer or the run in progress",
    "  /new        start a new conversation",
    "  /quit       or Ctrl-D",
]


class Lines:
    """Lines from stdin, a terminal or a pipe; None at end of input.

    Each read happens on a daemon thread, so an unfinished read never holds up exit.
    """

    def __init__(self) -> None:
        self.interactive = sys.stdin.isatty()
        if self.interactive:
            with contextlib.suppress(ImportError):
                importlib.import_module("readline")  # line editing and history for input()

    async def next(self, prompt: str) -> str | None:
        loop = asyncio.get_running_loop()
        line: asyncio.Future[str | None] = loop.create_future()

        def read() -> None:
            try:
                text: str | None = input(prompt if self.interactive else "")
            except EOFError:
                text = None
            loop.call_soon_threadsafe(_resolve, line, text)

        threading.Thread(target=read, name="shell-input", daemon=True).start()
        return await line


def _resolve(future: asyncio.Future[str | None], value: str | None) -> None:
    if not future.done():
        future.set_result(value)


class Shell:
    def __init__(self, runtime: Runtime, console: ConsoleSlack, *, user: str, channel: str) -> None:
        self.user = user
        self.channel = channel
        self._runtime = runtime
        self._console = console
        self._screen: Screen = console.screen
        self._requests = runtime.requests
        self._offers = Offers(runtime.runs)
        self._thread: str | None = None
        self._sent_at = 0.0

    async def run(self, lines: Lines) -> None:
        upcoming: asyncio.Future[str | None] = asyncio.ensure_future(lines.next(f"{self.user} › "))
        while (line := await upcoming) is not None:
            self._echo(lines, line)
            if not await self.handle(line.strip()):
                break
            # The next line is read while the bot works, so /stop can be typed meanwhile.
            upcoming = await self._settle_taking_stops(lines)
        await self.settle()
        if lines.interactive:
            self._screen.show("", [""])  # Ctrl-D leaves the cursor after the prompt

    def _echo(self, lines: Lines, line: str) -> None:
        if not lines.interactive and line.strip():
            self._screen.show(f"{self.user} › ", [line])

    async def _settle_taking_stops(self, lines: Lines) -> asyncio.Future[str | None]:
        """Wait until the bot is quiet, acting on any ``/stop`` read meanwhile; returns the
        read of the next other line, which waits its turn."""
        upcoming: asyncio.Future[str | None] = asyncio.ensure_future(lines.next(""))
        settling: asyncio.Future[object] = asyncio.ensure_future(self.settle())
        while not settling.done():
            either: set[asyncio.Future[object]] = {settling, upcoming}  # type: ignore[arg-type]
            await asyncio.wait(either, return_when=asyncio.FIRST_COMPLETED)
            if not upcoming.done() or settling.done():
                continue
            line = upcoming.result()
            if line is None or line.strip() != "/stop":
                break
            self._echo(lines, line)
            await self._stop()
            upcoming = asyncio.ensure_future(lines.next(""))
        await settling
        if lines.interactive and not upcoming.done():
            self._screen.prompt(f"{self.user} › ")  # the read began with no prompt
        return upcoming

    async def handle(self, line: str) -> bool:
        """Act on one line; False when the person asked to quit."""
        word, _, rest = line.partition(" ")
        if not line:
            return True
        if not line.startswith("/"):
            await self._ask(line)
        elif word in ("/quit", "/exit"):
            return False
        elif word == "/run":
            await self._run_command(rest)
        elif word in _CLICKS:
            await self._click(_CLICKS[word], rest.strip())
        elif word == "/stop":
            await self._stop()
        elif word == "/as":
            self._become(rest.strip())
        elif word == "/new":
            self._thread = None
            self._screen.note("new conversation")
        elif word == "/help":
            self._screen.show("", HELP)
        else:
            self._screen.note(f"{word} is not a shell command; /help lists them")
        return True

    # -- what the person does ----------------------------------------------------------

    async def _ask(self, text: str) -> None:
        ts = self._console.next_ts()
        thread, self._thread = self._thread, self._thread or ts
        channel = f"D{self.user}"
        await self._dispatch(payloads.direct_message(self.user, channel, text, ts, thread))

    async def _stop(self) -> None:
        """Press the stop button of this conversation, and of any run watched on screen."""
        threads = [(f"D{self.user}", self._thread)] if self._thread else []
        # A conversation and the runs it shows: every thread with work in progress.
        threads += await self._running_cards()
        if not threads:
            self._screen.note("nothing to stop")
        for channel, thread_ts in threads:
            await self._dispatch(payloads.session_stopped(self.user, channel, thread_ts))

    async def _running_cards(self) -> list[tuple[str, str]]:
        found: list[tuple[str, str]] = []
        with contextlib.suppress(BotError):
            for request_id in list(self._console.cards):
                record = await self._requests.get(request_id)
                if record is not None and record.state is RunState.RUNNING:
                    found.append((record.channel, record.run_thread))
        return found

    async def _run_command(self, text: str) -> None:
        url = self._console.response_url(self.user)
        await self._dispatch(payloads.slash_command(self.user, self.channel, text, url))

    async def _click(self, action_id: str, wanted: str) -> None:
        command = BUTTON_COMMANDS[action_id]
        listed = action_id in OFFERED and is_number(wanted)  # a line of a list, not an id
        card = None if listed else self._card_with(action_id, wanted)
        if card is not None:
            await self._press(action_id, card.buttons[action_id], card.channel, card.ts)
        elif action_id in OFFERED:
            await self._click_waiting(action_id, command, wanted)
        else:
            self._screen.note(
                f"no card on screen offers {command}" + (f" {wanted}" if wanted else "")
            )

    async def _click_waiting(self, action_id: str, command: str, wanted: str) -> None:
        try:
            pick = await self._offers.pick(self.user, action_id, command, wanted)
        except BotError as exc:
            self._screen.note(describe(exc))
            return
        self._screen.show("· ", pick.lines)
        if pick.record is not None:
            record = pick.record
            # Watched like this session's own cards: the prompt waits for the run it starts.
            self._console.watch(record.id, record.channel, record.card_ts)
            await self._press(action_id, record.id, record.channel, record.card_ts)

    async def _press(self, action_id: str, request_id: str, channel: str, card_ts: str) -> None:
        url = self._console.response_url(self.user)
        body = payloads.button_click(self.user, channel, card_ts, action_id, request_id, url)
        await self._dispatch(body)

    def _card_with(self, action_id: str, wanted: str) -> Card | None:
        """The newest card with this button, or the one whose id starts with ``wanted``."""
        cards = [
            card
            for card in self._console.cards.values()
            if action_id in card.buttons and card.request_id.startswith(wanted)
        ]
        return cards[-1] if cards else None

    def _become(self, user: str) -> None:
        if not user.startswith(("U", "W")) or not user.isalnum():
            self._screen.note("usage: /as U0BOB (a Slack user id)")
            return
        self.user, self._thread = user, None
        self._offers.forget()
        self._screen.note(f"you are now {user}")

    async def _dispatch(self, body: payloads.Json) -> None:
        # Socket Mode's path into Bolt: no request signature, everything else as in Slack.
        self._sent_at = time.monotonic()
        request = AsyncBoltRequest(body=body, mode="socket_mode")
        response = await self._runtime.bolt.async_dispatch(request)
        if response.status != 200:
            self._screen.note(f"the bot did not take that ({response.status}: {response.body})")

    # -- waiting -----------------------------------------------------------------------

    async def settle(self) -> None:
        # Polled: "quiet" spans Bolt's listener tasks, the console and Redis; no one event.
        while True:
            if await self._quiet():
                return
            await asyncio.sleep(POLL_SECONDS)

    async def _quiet(self) -> bool:
        last = max(self._sent_at, self._console.last_call)
        if self._runtime.inflight.count or time.monotonic() - last < QUIET_SECONDS:
            return False
        return not await self._runs_underway()

    async def _runs_underway(self) -> bool:
        try:
            for request_id in list(self._console.cards):
                record = await self._requests.get(request_id)
                if record is not None and record.state.underway:
                    return True
        except BotError:
            return False  # the store is down: the bot has said so; don't hang the prompt
        return False
