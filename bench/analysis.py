"""Reading what reached the fakes into per-answer outcomes and phase statistics."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass

from bench.fakes import Script, TieredSlack, TimedInference
from tests.fakes import FakeSlack, SlackCall
from tests.fakes.slack_model import visible_text

TEXT_METHODS = ("chat.startStream", "chat.appendStream", "chat.postMessage", "chat.update")
STATUS_METHOD = "assistant.threads.setStatus"


@dataclass(frozen=True)
class Ask:
    """One question in its own thread, and the answer the fake model gives it."""

    channel: str
    thread_ts: str
    question: str
    script: Script


@dataclass(frozen=True)
class Outcome:
    exact: bool
    attempts: int  # answers started: setStatus calls or model requests, whichever is more
    first_visible_ms: float | None  # first model token written -> first text Slack accepted
    # The burst's start (all its events sent at once) -> first text Slack accepted: what the
    # person waits, acknowledgement, queueing, start-up and the model included.
    since_burst_ms: float | None
    # The burst's start -> arrival of the accepted call after which the thread first read as
    # the whole answer (TieredSlack.completed); None: not complete when the phase ended.
    complete_ms: float | None
    intervals: list[float]  # seconds between accepted text updates of this answer


def percentile(values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile; NaN for no values."""
    if not values:
        return math.nan
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def accepted(call: SlackCall) -> bool:
    return call.status == 200 and bool(call.response and call.response.get("ok"))


def call_text(call: SlackCall) -> str:
    """The text a call puts on screen (the whole message for posts and edits)."""
    params = call.params
    if call.method in ("chat.startStream", "chat.appendStream"):
        return str(params.get("markdown_text") or "")
    blocks = params.get("blocks")
    return visible_text(str(params.get("text") or ""), blocks if isinstance(blocks, list) else [])


def calls_by_thread(slack: FakeSlack) -> dict[str, list[SlackCall]]:
    message_thread = {m.ts: m.thread_ts for m in slack.messages()}
    threads: dict[str, list[SlackCall]] = {}
    for call in slack.calls:
        thread = call.params.get("thread_ts")
        if thread is None and call.params.get("ts") is not None:
            thread = message_thread.get(str(call.params["ts"]))
        if thread is not None:
            threads.setdefault(str(thread), []).append(call)
    return threads


def outcomes(
    slack: TieredSlack,
    inference: TimedInference,
    asks: Sequence[Ask],
    burst_at: float,
    ended_at: float,
) -> list[Outcome]:
    """Per ask; ``ended_at`` is the end of the phase (monotonic): an answer that became whole
    only later, while the bots were being stopped, does not count as complete."""
    threads = calls_by_thread(slack)
    results = []
    for ask in asks:
        calls = threads.get(ask.thread_ts, [])
        answer = ask.script.text
        shown = [
            c.at
            for c in calls
            if c.method in TEXT_METHODS and accepted(c) and _carries_answer(c, answer)
        ]
        shown.sort()
        streams = inference.times.get(ask.question, [])
        first_token = streams[0].first_token if streams else None
        first_ms = (shown[0] - first_token) * 1000 if shown and first_token else None
        complete_at = slack.completed.get((ask.channel, ask.thread_ts), math.inf)
        results.append(
            Outcome(
                exact="".join(slack.thread_bodies(ask.channel, ask.thread_ts)) == answer,
                attempts=max(len(streams), sum(1 for c in calls if c.method == STATUS_METHOD)),
                first_visible_ms=first_ms,
                since_burst_ms=(shown[0] - burst_at) * 1000 if shown else None,
                complete_ms=(complete_at - burst_at) * 1000 if complete_at <= ended_at else None,
                intervals=[b - a for a, b in itertools.pairwise(shown)],
            )
        )
    return results


def _carries_answer(call: SlackCall, answer: str) -> bool:
    text = call_text(call)
    return bool(text) and text in answer


def method_counts(slack: FakeSlack) -> Counter[str]:
    return Counter(c.method for c in slack.calls if c.method != "auth.test")
