"""``python -m bench``: every phase with each setup (1 process, web + worker, two of those).

Options select a part of it (``--setups``, ``--phases``), the sender's HTTP client
(``--client``), where the figures go (``--out``) and a kept directory for the bots' logs
(``--workdir``). A reduced run: ``python -m bench --phases burst200 --setups single,split
--out /tmp/bench.md``.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import tempfile
import time
from pathlib import Path

from bench.events import Acks
from bench.report import document, floor_text, table
from bench.rig import RedisServer
from bench.scenarios import LOADS, SETUPS, Load, PhaseResult, Setup, harness_floor, run_phase
from bench.sender import CLIENTS

RESULTS = Path(__file__).with_name("RESULTS.md")

METHODS = """\
- **Setups.** A bot is `python -m bot` (the web process) with default settings (update
  interval 1 s) except `COPILOT_WORKERS`, which the bench sets in each setup: **1 process**
  is one `python -m bot` with `COPILOT_WORKERS=0` (the web process answers by itself);
  **web + worker** is one with `COPILOT_WORKERS=1`, which starts one `python -m bot worker`
  child that does the answering; **2 × (web + worker)** is two of those. Event *i* goes to
  web process *i* mod 2 (with one, to that one). All bots of a phase share the fakes (one
  workspace, one Slack rate budget) and Redis.
- **Processes.** The bots are pointed at a FakeSlack and a FakeInference served by the bench
  process on 127.0.0.1 and at a real `redis-server` on a free loopback port, and run in a
  scratch directory with `PYTHONPATH` set to the bench's own checkout, so the bot measured
  is the code next to the bench (workers inherit the environment). Every phase starts with
  an empty Redis, new fakes and new bot processes. The phases run load by load, each load
  with every setup back to back, so setups are compared a few minutes apart at most. Before
  the burst, the bench waits until each web process answers `GET /healthz`, has its workers
  (or 5 s passed without them) and its process tree has used under 10% of a core for 0.5 s
  (start-up done; 15 s at most). A bot's processes write one log; its warnings and errors
  are summed up per phase below.
- **Process tree.** A bot's OS processes are the web process and its descendants, found
  through /proc/PID/task/\\*/children, recursively; a worker is the one whose command line
  says `worker`. Processes that start or end during a phase are handled (see CPU, Memory).
  At the end, the web process gets SIGTERM (it stops its workers); whatever of the tree is
  still there 5 s later gets SIGKILL, by pid. A web process that ended during a phase is
  reported with its exit code (its tree's CPU figure is then n/a).
- **Slack limits** are enforced in every phase, the memory phase included (the bot is meant to
  pace itself, so lifting them would hide 429s). FakeSlack's `limit()` is per method; a
  bench subclass adds the per-channel bucket for chat.postMessage.
- **Ack latency.** The signed `event_callback` (app_mention) POSTs are sent by a separate
  OS process (bench/sender.py, its own asyncio loop and HTTP client, started and ready
  before the burst), so the bench process's loop, busy with the fakes during a burst, adds
  no lag to them. All POSTs of a phase are started at once, at most 50 in flight over at
  most 50 keep-alive connections. One ack is the time from handing the signed request to
  the client until the whole HTTP 200 response has arrived (waiting for a free slot is not
  counted); the sender reports each one, and its status, to the bench. Retried deliveries
  are not counted. The client writes and reads HTTP/1.1 on plain keep-alive sockets, the
  least client work per request (`--client aiohttp` or `--client httpx` measure with those
  clients; httpx, used first, spends milliseconds of CPU per request at 50 in flight, and
  its acks read ~100 ms p50 and ~0.6 s p99 even against a server that does nothing).
- **Harness floor.** Before the phases, each load's burst (same events, retries,
  concurrency and client) is sent to a do-nothing aiohttp server in its own process
  (bench/nullserver.py); its ack p50 / p99 is shown under the table: the part of an ack
  that is the harness and the machine, not the bot. The sender's own loop lag is listed per
  phase.
- **First token → first visible text.** FakeInference (subclassed in bench/fakes.py, the
  test fake unchanged) stamps, with `time.monotonic()`, the moment its write of the first
  text chunk returned. FakeSlack stamps each call on arrival (`SlackCall.at`, same clock,
  same process). The figure is, per answer, the first call Slack accepted (200, ok) among
  startStream / appendStream / postMessage / update whose text is part of the model's
  answer, minus the first-token stamp. Answers that showed no text in the phase are left
  out (n says how many are in).
- **Burst start → first visible text** (what people wait): the same first accepted call,
  minus the bench's `time.monotonic()` just before it tells the sender to start the burst.
  It includes the ack, queueing for a worker, the answer's start-up and the model's first
  token (the fake model answers at once), so it can only be larger than the figure above.
- **Burst start → answer complete** (what people wait for the whole answer). The bench's
  FakeSlack subclass (bench/fakes.py) is told each thread's model text. After every call it
  accepted among postMessage / update / startStream / appendStream / stopStream, it renders
  that call's thread as the Exact figure does (the bot's message bodies in the thread,
  joined) and, the first time that equals the model's whole text, keeps the call's arrival
  stamp (`SlackCall.at`). The figure is that stamp minus the burst start, per answer, as
  p50 / p99 / max in seconds over **all** answers asked: one not complete when the phase
  ended (one that became whole only while the bots were being stopped included) counts as
  +inf and reads "> T", T the phase's length in s, so a p99 or max never describes only the
  answers that made it; "k/n complete" says how many did. A thread that later stops reading
  as the answer (a notice added, an edit) keeps its first stamp. The Exact row reads the
  threads after the bots were stopped, so it also counts answers made whole while they
  stopped. The ratio column says n/a where a side is +inf.
- **Exact.** The thread's message bodies as FakeSlack renders them, joined, equal the model
  text. **Slack calls per answer**: every Web API call the fake received in the phase
  (429-refused calls and SDK retries included, auth.test excluded) / answers asked.
  **429s**: the fake's `rate_limited` count. **Update interval**: gaps between consecutive
  accepted text-carrying calls of one answer, pooled over all answers, median.
- **End of a phase.** Every answer is done, or the phase's window after the burst has
  passed; then the bots are stopped. Done, in Redis: the answer's exchange is in the thread
  history; or the question was taken, its thread is idle (no lock, empty queue) and no work
  is pending anywhere (no process has work registered, every other list of the bot's keys
  is empty, no stream consumer group has pending or unread entries), so that questions
  handed to a worker and not yet picked up do not count as given up. And in Slack: every
  thread reads as its whole answer, or no call that changes a thread (429-refused ones
  included) has arrived for 5 s, so that an answer remembered before its last text reached
  Slack is not cut off while one the bot gave up on does not hold the phase to its window.
  burst200's window (60 s) leaves room to see answers that finish after the 15 s target.
- **Memory.** VmRSS from /proc/PID/status of every OS process of every bot (web and each
  worker apart), sampled every 0.25 s; the figure is the sample taken while the number of
  open model streams (counted by the fake) was at its peak, shown with that peak. VmHWM is
  read at the end of the phase (for a process that ended during the phase: its last
  sample, marked "ended"). The 200 MB target applies to each OS process. open500 uses slow
  answers (80 chunks 0.4 s apart, ~32 s) so that all 500 streams are open at once.
- **CPU.** utime+stime of every OS process of the bots, from /proc/PID/stat, from just
  before the burst to the end of the phase, divided by the text chunks the fake wrote (one
  chunk = one "token", 4-8 characters). The tree's total at a moment is, over its live
  processes, utime+stime plus cutime+cstime (the time of children that ended and were
  waited for), so a worker that exits or is restarted mid-phase stays counted. The split
  by process in the details compares each process's own utime+stime at both ends, keyed by
  pid and start time. It includes per-answer overhead (acks, Redis, Slack calls, retries,
  handing work from web to worker), not only token handling. The sender is not counted.
- **Duplicates.** In burst200 the first 20 events are delivered a second time with the same
  event_id and `X-Slack-Retry-Num: 1`, concurrently, to the other web process (to the same
  one when there is only one). Answer attempts per thread are the larger of its
  `assistant.threads.setStatus` calls (one per answer started) and its model requests.
- **Noise gauges.** The fakes run in the bench process; its event-loop lag p99 is listed per
  phase: when it is high, the fakes' stamps are late and latencies read high. The fakes,
  Redis, the sender and the bots share the machine's cores."""


def _select(given: str | None, names: list[str]) -> list[str]:
    """The comma-separated names in ``given`` (all of ``names`` when None), checked."""
    if given is None:
        return names
    picked = [part.strip() for part in given.split(",") if part.strip()]
    unknown = [part for part in picked if part not in names]
    if unknown or not picked:
        wrong = ", ".join(unknown) or repr(given)
        raise SystemExit(f"unknown: {wrong}; choose from {', '.join(names)}")
    return picked


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "--setups",
        help="comma-separated, from " + ", ".join(s.key for s in SETUPS) + " (default: all)",
    )
    parser.add_argument(
        "--phases",
        help="comma-separated, from " + ", ".join(load.name for load in LOADS) + " (default: all)",
    )
    parser.add_argument(
        "--out", type=Path, default=RESULTS, help="where the figures go (default: bench/RESULTS.md)"
    )
    parser.add_argument(
        "--client",
        choices=CLIENTS,
        default=CLIENTS[0],
        help="the sender's HTTP client (default: %(default)s, plain sockets; httpx is what "
        "the bench used first, and much slower at 50 in flight)",
    )
    parser.add_argument(
        "--workdir",
        type=Path,
        help="scratch directory for Redis and the bots' logs, kept (default: a temporary one)",
    )
    return parser


async def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    setups_by_key = {setup.key: setup for setup in SETUPS}
    loads_by_name = {load.name: load for load in LOADS}
    setups: list[Setup] = [setups_by_key[k] for k in _select(args.setups, list(setups_by_key))]
    loads: list[Load] = [loads_by_name[k] for k in _select(args.phases, list(loads_by_name))]
    begun = time.monotonic()
    results: list[PhaseResult] = []
    floors: dict[str, Acks] = {}
    for load in loads:
        print(f"[{time.monotonic() - begun:5.0f}s] {load.name}, harness floor…", flush=True)
        floors[load.name] = await harness_floor(load, args.client)
    with contextlib.ExitStack() as stack:
        if args.workdir is None:
            workdir = Path(
                stack.enter_context(tempfile.TemporaryDirectory(prefix="copilot-bench-"))
            )
        else:
            workdir = args.workdir
            workdir.mkdir(parents=True, exist_ok=True)
        redis = RedisServer(workdir)
        await redis.start()
        try:
            index = 0
            for load in loads:
                for setup in setups:
                    index += 1
                    print(
                        f"[{time.monotonic() - begun:5.0f}s] {load.name}, {setup.label}…",
                        flush=True,
                    )
                    result = await run_phase(load, setup, redis, workdir, index, args.client)
                    results.append(result)
        finally:
            await redis.stop()
    elapsed = time.monotonic() - begun
    print()
    print(table(results))
    print()
    print(floor_text(floors, args.client))
    args.out.write_text(document(results, METHODS, elapsed, floors, args.client) + "\n")
    print(f"\nwritten to {args.out} ({elapsed:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
