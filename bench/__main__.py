"""``python -m bench``: every phase with one bot process, then with two sharing one Redis."""

from __future__ import annotations

import asyncio
import sys
import tempfile
import time
from pathlib import Path

from bench.report import document, table
from bench.rig import RedisServer
from bench.scenarios import LOADS, PhaseResult, run_phase

RESULTS = Path(__file__).with_name("RESULTS.md")

METHODS = """\
- **Processes.** Each bot is `python -m bot` in its own process with default settings
  (update interval 1 s), pointed at a FakeSlack and a FakeInference served by the bench
  process on 127.0.0.1 and at a real `redis-server` on a free loopback port. Every phase
  starts with an empty Redis, new fakes and new bot processes. With two processes, event
  *i* goes to process *i* mod 2; both share the fakes (one workspace, one Slack rate budget)
  and Redis. The bot's log is kept; its warnings and errors are summed up per phase below.
- **Slack limits** are enforced in every phase, the memory phase included (the bot is meant to
  pace itself, so lifting them would hide 429s). FakeSlack's `limit()` is per method; a
  bench subclass adds the per-channel bucket for chat.postMessage.
- **Ack latency.** All signed `event_callback` (app_mention) POSTs of a phase are started at
  once with httpx, at most 50 in flight over 50 keep-alive connections. One ack is the time
  from handing the signed request to httpx until the whole HTTP 200 response has arrived
  (waiting for a free slot is not counted). Retried deliveries are not counted.
- **First token → first visible text.** FakeInference (subclassed in bench/fakes.py, the
  test fake unchanged) stamps, with `time.monotonic()`, the moment its write of the first
  text chunk returned. FakeSlack stamps each call on arrival (`SlackCall.at`, same clock,
  same process). The figure is, per answer, the first call Slack accepted (200, ok) among
  startStream / appendStream / postMessage / update whose text is part of the model's
  answer, minus the first-token stamp. Answers that showed no text in the phase are left
  out (n says how many are in).
- **Exact.** The thread's message bodies as FakeSlack renders them, joined, equal the model
  text. **Slack calls per answer**: every Web API call the fake received in the phase
  (429-refused calls and SDK retries included, auth.test excluded) / answers asked.
  **429s**: the fake's `rate_limited` count. **Update interval**: gaps between consecutive
  accepted text-carrying calls of one answer, pooled over all answers, median.
- **End of a phase.** Every answer is done (in Redis: its exchange is in the thread history,
  or the question was taken and the thread is idle: no lock, empty queue), or the phase's
  window after the burst has passed; then the bots get SIGTERM (SIGKILL 5 s later).
- **Memory.** VmRSS from /proc/PID/status of each bot, sampled every 0.25 s; the figure is
  the sample taken while the number of open model streams (counted by the fake) was at its
  peak, shown with that peak. VmHWM is read at the end of the phase. open500 uses slow
  answers (80 chunks 0.4 s apart, ~32 s) so that all 500 streams are open at once.
- **CPU.** utime+stime from /proc/PID/stat of the bots (summed), from just before the burst
  to the end of the phase, divided by the text chunks the fake wrote (one chunk = one
  "token", 4-8 characters). It includes per-answer overhead (acks, Redis, Slack calls,
  retries), not only token handling.
- **Duplicates.** In burst200 the first 20 events are delivered a second time with the same
  event_id and `X-Slack-Retry-Num: 1`, concurrently, to the other process (to the same one
  when there is only one). Answer attempts per thread are the larger of its
  `assistant.threads.setStatus` calls (one per answer started) and its model requests.
- **Noise gauge.** The fakes run in the bench process; its event-loop lag p99 is listed per
  phase: when it is high, the fakes' stamps are late and latencies read high."""


async def main() -> int:
    begun = time.monotonic()
    results: list[PhaseResult] = []
    with tempfile.TemporaryDirectory(prefix="copilot-bench-") as tmp:
        workdir = Path(tmp)
        redis = RedisServer(workdir)
        await redis.start()
        try:
            index = 0
            for procs in (1, 2):
                for load in LOADS:
                    index += 1
                    print(
                        f"[{time.monotonic() - begun:5.0f}s] {load.name}, {procs} bot process(es)…",
                        flush=True,
                    )
                    results.append(await run_phase(load, procs, redis, workdir, index))
        finally:
            await redis.stop()
    elapsed = time.monotonic() - begun
    print()
    print(table(results))
    RESULTS.write_text(document(results, METHODS, elapsed) + "\n")
    print(f"\nwritten to {RESULTS} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
