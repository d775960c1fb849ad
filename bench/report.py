"""The figures as a table (printed and written to bench/RESULTS.md), with targets marked."""

from __future__ import annotations

import datetime
import math
import os
import platform
import statistics
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.analysis import percentile
from bench.scenarios import (
    BURST,
    OPEN,
    SLACK_CHANNEL_TIERS,
    SLACK_TIERS,
    STREAM,
    Load,
    PhaseResult,
)

COMMAND = "scripts/bench"
MB = 1024.0

Cell = tuple[str, bool | None]  # the figure, and whether it meets the target (None: no target)


@dataclass(frozen=True)
class Row:
    metric: str
    target: str
    cell: Callable[[PhaseResult], Cell]
    load: Load


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.0f}"


def _ack(r: PhaseResult) -> Cell:
    ms = [s * 1000 for s in r.acks.seconds]
    p99 = percentile(ms, 99)
    failed = f", {len(r.acks.failures)} failed" if r.acks.failures else ""
    ok = p99 <= 50 and not r.acks.failures
    return f"{_ms(percentile(ms, 50))} / {_ms(p99)} (n={len(ms)}{failed})", ok


def _first_visible(r: PhaseResult) -> Cell:
    ms = [o.first_visible_ms for o in r.outcomes if o.first_visible_ms is not None]
    p50 = percentile(ms, 50)
    return f"{_ms(p50)} / {_ms(percentile(ms, 99))} (n={len(ms)})", p50 <= 150


def _exact(r: PhaseResult) -> Cell:
    exact = sum(o.exact for o in r.outcomes)
    return f"{exact}/{len(r.outcomes)}", exact == len(r.outcomes)


def _rate_limited(r: PhaseResult) -> Cell:
    total = sum(r.rate_limited.values())
    return str(total), total == 0


def _calls_per_answer(r: PhaseResult) -> Cell:
    return f"{sum(r.calls.values()) / max(1, len(r.outcomes)):.1f}", None


def _interval(r: PhaseResult) -> Cell:
    gaps = [g for o in r.outcomes for g in o.intervals]
    return (f"{statistics.median(gaps):.2f} (n={len(gaps)})" if gaps else "n/a"), None


def _reached(r: PhaseResult) -> str:
    """Empty when every stream of the phase was open at once, else why the figure is short."""
    return "" if r.peak_open >= r.load.asks else f"; only {r.peak_open} of {r.load.asks} open"


def _rss(r: PhaseResult) -> Cell:
    rss = [m.rss_kb / MB for m in r.memory_at_peak]
    shown = " + ".join(f"{x:.0f}" for x in rss)
    ok = bool(rss) and max(rss) <= 200 and not _reached(r)
    return f"{shown} at {r.peak_open} open streams{_reached(r)}", ok


def _hwm(r: PhaseResult) -> Cell:
    hwm = [m.hwm_kb / MB for m in r.memory_end]
    ok = bool(hwm) and max(hwm) <= 200 and not _reached(r)
    short = _reached(r)
    note = f" ({short.removeprefix('; ')})" if short else ""
    return " + ".join(f"{x:.0f}" for x in hwm) + note, ok


def _cpu(r: PhaseResult) -> Cell:
    per_k = r.cpu_seconds / r.tokens * 1000 if r.tokens else math.nan
    return f"{per_k:.2f} ({r.cpu_seconds:.1f} s / {r.tokens} tok)", None


def _duplicates(r: PhaseResult) -> Cell:
    once = sum(1 for a in r.duplicate_attempts if a == 1)
    more = sum(1 for a in r.duplicate_attempts if a > 1)
    return f"{once}/{len(r.duplicate_attempts)} once, {more} twice+", more == 0 and once == len(
        r.duplicate_attempts
    )


def _wall(r: PhaseResult) -> Cell:
    done = "all answers done" if r.settled else "window ended first"
    return f"{r.seconds:.0f} s ({done})", None


def _info(cell: Callable[[PhaseResult], Cell]) -> Callable[[PhaseResult], Cell]:
    """The same figure, shown without judging it (no target for this phase)."""
    return lambda r: (cell(r)[0], None)


ROWS = (
    Row("ack latency p50 / p99, ms", "p99 ≤ 50", _ack, BURST),
    Row("duplicate deliveries answered once", "all once", _duplicates, BURST),
    Row("first token → first visible text p50 / p99, ms", "p50 ≤ 150", _first_visible, BURST),
    Row("429 responses from Slack", "0", _rate_limited, BURST),
    Row("answers complete and exact in the window", "", _info(_exact), BURST),
    Row("first token → first visible text p50 / p99, ms", "p50 ≤ 150", _first_visible, STREAM),
    Row("Slack calls per answer (incl. refused)", "", _calls_per_answer, STREAM),
    Row("429 responses from Slack", "0", _rate_limited, STREAM),
    Row("answers complete and exact", "50/50", _exact, STREAM),
    Row("median interval between updates of one answer, s", "", _interval, STREAM),
    Row("bot CPU s per 1,000 streamed tokens", "", _cpu, STREAM),
    Row("ack latency p50 / p99, ms (500 at once)", "", _info(_ack), OPEN),
    Row("RSS per bot process at peak open streams, MB", "≤ 200", _rss, OPEN),
    Row("peak RSS (VmHWM) per bot process, MB", "≤ 200", _hwm, OPEN),
    Row("bot CPU s per 1,000 streamed tokens", "", _cpu, OPEN),
    Row("first token → first visible text p50 / p99, ms", "p50 ≤ 150", _first_visible, OPEN),
    Row("429 responses from Slack", "0", _rate_limited, OPEN),
    Row("answers complete and exact in the window", "", _info(_exact), OPEN),
)


def _mark(cell: Cell) -> str:
    text, ok = cell
    if ok is None:
        return text
    return f"{text} ✓" if ok else f"{text} ✗ MISSED"


def table(results: Sequence[PhaseResult]) -> str:
    procs = sorted({r.procs for r in results})
    by_key = {(r.load.name, r.procs): r for r in results}
    heads = ["phase", "metric", "target"] + [
        f"{p} bot process{'es' if p > 1 else ''}" for p in procs
    ]
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    loads = list(dict.fromkeys(row.load.name for row in ROWS))
    for row in ROWS:
        cells = [
            _mark(row.cell(by_key[(row.load.name, p)])) if (row.load.name, p) in by_key else "-"
            for p in procs
        ]
        lines.append(
            f"| {row.load.name} | {row.metric} | {row.target} | " + " | ".join(cells) + " |"
        )
    for name in loads:
        cells = [_mark(_wall(by_key[(name, p)])) if (name, p) in by_key else "-" for p in procs]
        lines.append(
            f"| {name} | time from the burst to the end of the phase | | "
            + " | ".join(cells)
            + " |"
        )
    return "\n".join(lines)


def details(results: Sequence[PhaseResult]) -> str:
    out = []
    for r in results:
        out.append(f"### {r.load.name}, {r.procs} bot process{'es' if r.procs > 1 else ''}")
        out.append("")
        calls = ", ".join(f"{m} {n}" for m, n in sorted(r.calls.items()))
        limited = ", ".join(f"{m} {n}" for m, n in sorted(r.rate_limited.items())) or "none"
        out.append(f"- Slack calls received: {calls}")
        out.append(f"- 429 responses by method: {limited}")
        out.append(f"- answer attempts per thread (setStatus calls): {_attempts(r)}")
        out.append(f"- bench event-loop lag p99 (fakes' own loop): {r.loop_lag_p99_ms:.0f} ms")
        if r.acks.failures:
            out.append(f"- failed deliveries: {len(r.acks.failures)}, e.g. {r.acks.failures[0]}")
        if r.bot_log:
            out.append("- bot log, warnings and errors:")
            out += [f"  - {n} × `{line}`" for line, n in r.bot_log.most_common(8)]
        out.append("")
    return "\n".join(out)


def _attempts(r: PhaseResult) -> str:
    counts: dict[int, int] = {}
    for o in r.outcomes:
        counts[o.attempts] = counts.get(o.attempts, 0) + 1
    return ", ".join(f"{k}: {v} threads" for k, v in sorted(counts.items()))


def machine() -> str:
    model = ""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return (
        f"nproc {os.cpu_count()}, {model or platform.processor() or 'unknown CPU'}, "
        f"Python {platform.python_version()}, {platform.system()} {platform.release()}"
    )


def loads_text() -> str:
    tiers = ", ".join(f"{m} {pm}/min burst {b}" for m, (pm, b) in SLACK_TIERS.items())
    channel_tiers = ", ".join(
        f"{m} {pm}/min burst {b} per channel" for m, (pm, b) in SLACK_CHANNEL_TIERS.items()
    )
    lines = [
        f"- Slack limits, enforced in every phase (token buckets, 429 + Retry-After): {tiers} "
        f"per workspace; {channel_tiers}. Other methods are not limited.",
    ]
    for load in (BURST, STREAM, OPEN):
        lines.append(
            f"- {load.name}: {load.asks} app_mention events, one thread each, spread over "
            f"{load.channels} channels; answers of {load.pieces} chunks "
            f"{load.delay * 1000:.0f} ms apart; {load.duplicates} retried deliveries; the phase "
            f"ends when every answer is done or {load.window:.0f} s after the burst started."
        )
    return "\n".join(lines)


def git_state() -> str:
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "bot"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    files = [line[3:] for line in changed if line.strip()]
    return f"{head}" + (f" plus uncommitted changes to {', '.join(files)}" if files else "")


def document(results: Sequence[PhaseResult], methods: str, elapsed: float) -> str:
    now = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    return "\n".join(
        [
            "# Benchmark results",
            "",
            f"- date: {now}",
            f"- machine: {machine()}",
            f"- command: `{COMMAND}` (runs `python -m bench`); whole run {elapsed:.0f} s",
            f"- bot code measured: {git_state()}",
            "- one run on a shared, noisy machine: medians and ratios are the figures to read.",
            "",
            "## Figures",
            "",
            "p50 / p99 are nearest-rank percentiles; ✗ MISSED marks a target not met.",
            "",
            table(results),
            "",
            "## Loads",
            "",
            loads_text(),
            "",
            "## How each figure is measured",
            "",
            methods,
            "",
            "## Details per phase",
            "",
            details(results),
        ]
    )
