"""Showing an agent run in the card's thread: a step per tool call, then the answer.

Steps use Slack's native task timeline where the workspace streams (``TaskStream``) and
plain messages otherwise, or from the moment the stream is refused. What the agent and its
tools say (tool names, arguments, output, the answer) is foreign text: ``untrusted.shown``
masks it and makes its Slack control sequences inert before it is cut or sent; notes are
the bot's own words, masked too. A failure to post one step is logged and the run goes on;
the final answer is posted in as many messages as it needs, and output too long for a
message goes up as a file.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from slack_sdk.web.async_client import AsyncWebClient

from bot import untrusted
from bot.errors import SlackError
from bot.markdown import fit
from bot.redact import mask
from bot.slack import blocks
from bot.slack.calls import slack_errors
from bot.slack.task_stream import TaskStream
from bot.text import clip

log = logging.getLogger(__name__)

RESULT_INLINE_CHARS = 1_500


@dataclass
class Step:
    ts: str | None
    name: str
    title: str
    started: float
    native: bool = False


@dataclass
class RunProgress:
    slack: AsyncWebClient
    channel: str
    thread_ts: str
    stream: TaskStream | None = None
    steps: dict[str, Step] = field(default_factory=dict)

    async def tool_started(self, call_id: str, name: str, detail: str) -> None:
        name = untrusted.shown(name)
        shown = clip(untrusted.shown(detail), 150) if detail else ""
        title = f"*{name}*" + (f" `{shown}`" if shown else "")
        now = time.monotonic()
        if self.stream and await self.stream.task(call_id, name, "in_progress", details=shown):
            self.steps[call_id] = Step(None, name, title, now, native=True)
            return
        ts = await self._post(f":gear: {title} — running…")
        self.steps[call_id] = Step(ts, name, title, now)

    async def tool_finished(self, call_id: str, name: str, output: str) -> None:
        name = untrusted.shown(name)
        step = self.steps.pop(call_id, None) or Step(None, name, f"*{name}*", time.monotonic())
        seconds = time.monotonic() - step.started
        output = mask(output)  # the file keeps the text as it was, masked
        shown = untrusted.neutralise(output)
        if len(shown) > RESULT_INLINE_CHARS:
            shown = shown[:RESULT_INLINE_CHARS] + "…"
        done = f"done in {seconds:.1f} s"
        if not (step.native and await self._task(call_id, name, "complete", f"{done}\n{shown}")):
            text = f":white_check_mark: {step.title} — {done}\n```\n{shown}\n```"
            if step.ts is None or not await self._update(step.ts, text):
                await self._post(text)
        if len(output) > RESULT_INLINE_CHARS:
            await self._upload(f"{name}-output.txt", output, f"Full output of {name}")

    async def note(self, text: str) -> None:
        if not (self.stream and await self.stream.markdown(mask(text) + "\n\n")):
            await self._post(mask(text))

    async def answer(self, text: str) -> None:
        full = untrusted.shown(text) or "_The agent finished without a final answer._"
        if self.stream and await self.stream.markdown(full):
            return
        rest: str | None = full
        while rest:
            head, rest = fit("", rest, blocks.MESSAGE_BYTES)
            await self._post(head, markdown=True)

    async def close(self) -> None:
        """End the timeline: a step that never got its result is shown as failed."""
        if self.stream is None:
            return
        for call_id, step in list(self.steps.items()):
            if step.native:
                await self._task(call_id, step.name, "error", "no result: the run ended first")
        await self.stream.close()

    async def _task(self, call_id: str, name: str, status: str, output: str) -> bool:
        return self.stream is not None and await self.stream.task(
            call_id, name, status, output=output
        )

    async def _post(self, text: str, *, markdown: bool = False) -> str | None:
        message_blocks = [blocks.markdown(text)] if markdown else None
        try:
            async with slack_errors("chat.postMessage"):
                response = await self.slack.chat_postMessage(
                    channel=self.channel,
                    thread_ts=self.thread_ts,
                    text=clip(text) if markdown else text,
                    blocks=message_blocks,
                )
        except SlackError as exc:
            log.warning("could not post run progress: %s", exc.code)
            return None
        return str(response["ts"])

    async def _update(self, ts: str, text: str) -> bool:
        try:
            async with slack_errors("chat.update"):
                await self.slack.chat_update(channel=self.channel, ts=ts, text=text)
        except SlackError as exc:
            log.warning("could not update a run step: %s", exc.code)
            return False
        return True

    async def _upload(self, filename: str, content: str, title: str) -> None:
        try:
            async with slack_errors("files.upload"):
                await self.slack.files_upload_v2(
                    channel=self.channel,
                    thread_ts=self.thread_ts,
                    filename=filename,
                    content=content,
                    title=title,
                )
        except SlackError as exc:
            log.warning("could not upload run output: %s", exc.code)
