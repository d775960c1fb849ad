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
from bench.events import Acks
from bench.rig import ROOT
from bench.scenarios import (
    BURST,
    OPEN,
    SETUPS,
    SINGLE,
    SLACK_CHANNEL_TIERS,
    SLACK_TIERS,
    SPLIT,
    STREAM,
    Load,
    PhaseResult,
    ProcMemory,
    Setup,
)

COMMAND = "scripts/bench"
MB = 1024.0

Cell = tuple[str, bool | None]  # the figure, and whether it meets the target (None: no target)
# The ratio column divides the first setup's figures by the second's, from the same run.
RATIO = (SINGLE, SPLIT)


@dataclass(frozen=True)
class Row:
    metric: str
    target: str
    cell: Callable[[PhaseResult], Cell]
    load: Load
    ratio: Callable[[PhaseResult], tuple[float, ...]] | None = None  # figures to divide


def _ms(value: float) -> str:
    return "n/a" if math.isnan(value) else f"{value:.0f}"


def _ack_ms(r: PhaseResult) -> tuple[float, float]:
    ms = [s * 1000 for s in r.acks.seconds]
    return percentile(ms, 50), percentile(ms, 99)


def _first_visible_ms(r: PhaseResult) -> tuple[float, float]:
    ms = [o.first_visible_ms for o in r.outcomes if o.first_visible_ms is not None]
    return percentile(ms, 50), percentile(ms, 99)


def _since_burst_ms(r: PhaseResult) -> tuple[float, float]:
    ms = [o.since_burst_ms for o in r.outcomes if o.since_burst_ms is not None]
    return percentile(ms, 50), percentile(ms, 99)


def _since_burst(r: PhaseResult) -> Cell:
    ms = [o.since_burst_ms for o in r.outcomes if o.since_burst_ms is not None]
    return f"{_ms(percentile(ms, 50))} / {_ms(percentile(ms, 99))} (n={len(ms)})", None


def _complete_ms(r: PhaseResult) -> list[float]:
    """Burst start → answer complete, per ask; an answer not complete when the phase ended
    counts as +inf, so that p50 / p99 / max over all asks read "> the phase's length" as soon
    as enough of them are missing, instead of describing only the fast ones."""
    return [math.inf if o.complete_ms is None else o.complete_ms for o in r.outcomes]


def _complete_p(r: PhaseResult) -> tuple[float, float]:
    ms = _complete_ms(r)
    return percentile(ms, 50), percentile(ms, 99)


def _seconds(ms: float, r: PhaseResult) -> str:
    if math.isnan(ms):
        return "n/a"
    return f"> {r.seconds:.0f}" if math.isinf(ms) else f"{ms / 1000:.1f}"


def _complete(r: PhaseResult) -> Cell:
    ms = _complete_ms(r)
    done = sum(1 for v in ms if math.isfinite(v))
    figures = " / ".join(
        _seconds(v, r) for v in (percentile(ms, 50), percentile(ms, 99), max(ms, default=math.nan))
    )
    return f"{figures} ({done}/{len(ms)} complete)", None


def _complete_within(limit_s: float) -> Callable[[PhaseResult], Cell]:
    """The same figure, met when every answer is complete within ``limit_s`` of the burst."""

    def cell(r: PhaseResult) -> Cell:
        ms = _complete_ms(r)
        return _complete(r)[0], bool(ms) and max(ms) <= limit_s * 1000

    return cell


def _cpu_per_k(r: PhaseResult) -> tuple[float]:
    return (r.cpu_seconds / r.tokens * 1000 if r.tokens else math.nan,)


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


def _processes(memory: list[list[ProcMemory]], kb: Callable[[ProcMemory], int]) -> str:
    """Per OS process, bots apart: "web 60 + worker 90; web 61 + worker 88"."""
    return "; ".join(
        " + ".join(f"{m.role}{' (ended)' if m.ended else ''} {kb(m) / MB:.0f}" for m in bot)
        for bot in memory
    )


def _largest(memory: list[list[ProcMemory]], kb: Callable[[ProcMemory], int]) -> float:
    return max((kb(m) / MB for bot in memory for m in bot), default=math.nan)


def _rss(r: PhaseResult) -> Cell:
    largest = _largest(r.memory_at_peak, lambda m: m.rss_kb)
    ok = largest <= 200 and not _reached(r)
    shown = _processes(r.memory_at_peak, lambda m: m.rss_kb)
    return f"{shown} at {r.peak_open} open streams{_reached(r)}", ok


def _hwm(r: PhaseResult) -> Cell:
    largest = _largest(r.memory_end, lambda m: m.hwm_kb)
    ok = largest <= 200 and not _reached(r)
    short = _reached(r)
    note = f" ({short.removeprefix('; ')})" if short else ""
    return _processes(r.memory_end, lambda m: m.hwm_kb) + note, ok


def _cpu(r: PhaseResult) -> Cell:
    (per_k,) = _cpu_per_k(r)
    if math.isnan(per_k):
        return "n/a (a web process was gone at the end)", None
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
    Row("ack latency p50 / p99, ms", "p99 ≤ 50", _ack, BURST, _ack_ms),
    Row("duplicate deliveries answered once", "all once", _duplicates, BURST),
    Row(
        "first token → first visible text p50 / p99, ms",
        "p50 ≤ 150",
        _first_visible,
        BURST,
        _first_visible_ms,
    ),
    Row(
        "burst start → first visible text p50 / p99, ms (what people wait)",
        "",
        _since_burst,
        BURST,
        _since_burst_ms,
    ),
    Row(
        "burst start → answer complete p50 / p99 / max, s",
        "all complete, max ≤ 15",
        _complete_within(15.0),
        BURST,
        _complete_p,
    ),
    Row("429 responses from Slack", "0", _rate_limited, BURST),
    Row("answers complete and exact in the window", "", _info(_exact), BURST),
    Row(
        "first token → first visible text p50 / p99, ms",
        "p50 ≤ 150",
        _first_visible,
        STREAM,
        _first_visible_ms,
    ),
    Row(
        "burst start → first visible text p50 / p99, ms (what people wait)",
        "",
        _since_burst,
        STREAM,
        _since_burst_ms,
    ),
    Row(
        "burst start → answer complete p50 / p99 / max, s",
        "",
        _complete,
        STREAM,
        _complete_p,
    ),
    Row("Slack calls per answer (incl. refused)", "", _calls_per_answer, STREAM),
    Row("429 responses from Slack", "0", _rate_limited, STREAM),
    Row("answers complete and exact", "50/50", _exact, STREAM),
    Row("median interval between updates of one answer, s", "", _interval, STREAM),
    Row("bot CPU s (all its processes) per 1,000 streamed tokens", "", _cpu, STREAM, _cpu_per_k),
    Row("ack latency p50 / p99, ms (500 at once)", "", _info(_ack), OPEN, _ack_ms),
    Row("RSS per OS process at peak open streams, MB", "≤ 200 each", _rss, OPEN),
    Row("peak RSS (VmHWM) per OS process, MB", "≤ 200 each", _hwm, OPEN),
    Row("bot CPU s (all its processes) per 1,000 streamed tokens", "", _cpu, OPEN, _cpu_per_k),
    Row(
        "first token → first visible text p50 / p99, ms",
        "p50 ≤ 150",
        _first_visible,
        OPEN,
        _first_visible_ms,
    ),
    Row(
        "burst start → first visible text p50 / p99, ms (what people wait)",
        "",
        _since_burst,
        OPEN,
        _since_burst_ms,
    ),
    Row(
        "burst start → answer complete p50 / p99 / max, s",
        "",
        _complete,
        OPEN,
        _complete_p,
    ),
    Row("429 responses from Slack", "0", _rate_limited, OPEN),
    Row("answers complete and exact in the window", "", _info(_exact), OPEN),
)


def _mark(cell: Cell) -> str:
    text, ok = cell
    if ok is None:
        return text
    return f"{text} ✓" if ok else f"{text} ✗ MISSED"


def _ratio(row: Row, by_key: dict[tuple[str, str], PhaseResult]) -> str:
    first, second = (by_key.get((row.load.name, setup.key)) for setup in RATIO)
    if row.ratio is None or first is None or second is None:
        return ""
    pairs = zip(row.ratio(first), row.ratio(second), strict=True)
    # n/a for a missing figure, and for one that is +inf (answers not complete in the phase).
    return " / ".join(
        f"{a / b:.2f}" if b and math.isfinite(a) and math.isfinite(b) else "n/a" for a, b in pairs
    )


def _setups(results: Sequence[PhaseResult]) -> list[Setup]:
    present = {r.setup for r in results}
    return [setup for setup in SETUPS if setup in present]


def _roles_text(roles: list[list[str]]) -> str:
    """ "web + worker" per bot; "2 × (web + worker)" when the bots are alike."""
    each = [" + ".join(bot) if bot else "gone" for bot in roles]
    if len(each) > 1 and len(set(each)) == 1:
        return f"{len(each)} × ({each[0]})"
    return "; ".join(each)


def table(results: Sequence[PhaseResult]) -> str:
    setups = _setups(results)
    by_key = {(r.load.name, r.setup.key): r for r in results}
    with_ratio = all(setup in setups for setup in RATIO)
    heads = ["phase", "metric", "target"] + [setup.label for setup in setups]
    if with_ratio:
        heads.append(f"ratio {RATIO[0].label} ÷ {RATIO[1].label}")
    lines = ["| " + " | ".join(heads) + " |", "|" + "---|" * len(heads)]
    ran = {r.load.name for r in results}
    rows = [row for row in ROWS if row.load.name in ran]
    loads = list(dict.fromkeys(row.load.name for row in rows))

    def line(name: str, metric: str, target: str, cells: list[str], ratio: str = "") -> None:
        extra = [ratio] if with_ratio else []
        lines.append("| " + " | ".join([name, metric, target, *cells, *extra]) + " |")

    for row in rows:
        cells = [
            _mark(row.cell(by_key[(row.load.name, s.key)]))
            if (row.load.name, s.key) in by_key
            else "-"
            for s in setups
        ]
        line(row.load.name, row.metric, row.target, cells, _ratio(row, by_key))
    for name in loads:
        cells = [
            _mark(_wall(by_key[(name, s.key)])) if (name, s.key) in by_key else "-" for s in setups
        ]
        line(name, "time from the burst to the end of the phase", "", cells)
    for name in loads:
        cells = []
        for s in setups:
            r = by_key.get((name, s.key))
            if r is None:
                cells.append("-")
                continue
            burst, end = _roles_text(r.processes_at_burst), _roles_text(r.processes_at_end)
            ended = f" ({r.processes_ended} ended in the phase)" if r.processes_ended else ""
            codes = [str(code) for code in r.web_exits if code is not None]
            ended += f" (web exit {', '.join(codes)})" if codes else ""
            cells.append((burst if burst == end else f"{burst} → {end}") + ended)
        line(name, "OS processes at the burst (→ at the end)", "", cells)
    return "\n".join(lines)


def details(results: Sequence[PhaseResult]) -> str:
    out = []
    for r in results:
        out.append(f"### {r.load.name}, {r.setup.label}")
        out.append("")
        calls = ", ".join(f"{m} {n}" for m, n in sorted(r.calls.items()))
        limited = ", ".join(f"{m} {n}" for m, n in sorted(r.rate_limited.items())) or "none"
        cpu = ", ".join(f"{role} {sec:.1f} s" for role, sec in sorted(r.cpu_by_role.items()))
        expected = r.setup.workers * r.setup.bots
        workers = sum(bot.count("worker") for bot in r.processes_at_burst)
        out.append(f"- Slack calls received: {calls}")
        out.append(f"- 429 responses by method: {limited}")
        out.append(f"- answer attempts per thread (setStatus calls): {_attempts(r)}")
        out.append(f"- bot CPU by process: {cpu or 'none'} (total {r.cpu_seconds:.1f} s)")
        out.append(
            f"- OS processes at the burst: {_roles_text(r.processes_at_burst)}; at the end: "
            f"{_roles_text(r.processes_at_end)}; ended during the phase: {r.processes_ended}"
        )
        for n, code in enumerate(r.web_exits):
            if code is not None:
                how = f"killed by signal {-code}" if code < 0 else f"exit code {code}"
                out.append(f"- **web process {n} ended during the phase ({how})**")
        if workers != expected:
            out.append(
                f"- **expected {expected} worker process(es) (COPILOT_WORKERS="
                f"{r.setup.workers}), found {workers} at the burst**"
            )
        out.append(f"- bench event-loop lag p99 (fakes' own loop): {r.loop_lag_p99_ms:.0f} ms")
        out.append(f"- sender process event-loop lag p99: {r.acks.sender_lag_p99_ms:.0f} ms")
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
    for setup in SETUPS:
        lines.append(
            f"- {setup.label}: {setup.bots} × `python -m bot` with "
            f"`COPILOT_WORKERS={setup.workers}`, sharing Redis and the fakes."
        )
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
            ["git", "rev-parse", "--short", "HEAD"],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout.strip()
        changed = subprocess.run(
            ["git", "status", "--porcelain", "--", "bot"],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        ).stdout.split("\n")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    files = [line[3:] for line in changed if line.strip()]
    return f"{head}" + (f" plus uncommitted changes to {', '.join(files)}" if files else "")


def _ratio_note(results: Sequence[PhaseResult]) -> str:
    if not all(setup in _setups(results) for setup in RATIO):
        return ""
    return (
        f" The ratio column is the {RATIO[0].label} figure divided by the {RATIO[1].label} "
        "figure of the same run (p50 / p99 where there are two): above 1, web + worker is "
        "faster (latency) or cheaper (CPU)."
    )


def floor_text(floors: dict[str, Acks], client: str) -> str:
    """The harness floor: each load's burst sent to a do-nothing server, by the same sender."""
    if not floors:
        return ""
    parts = []
    for name, acks in floors.items():
        p50, p99 = (percentile([s * 1000 for s in acks.seconds], q) for q in (50, 99))
        failed = f", {len(acks.failures)} failed" if acks.failures else ""
        parts.append(f"{name} {_ms(p50)} / {_ms(p99)} ms (n={len(acks.seconds)}{failed})")
    return (
        f"Harness floor: each burst sent by the same sender ({client}) to a do-nothing aiohttp "
        f"server in its own process, ack p50 / p99: {'; '.join(parts)}."
    )


def document(
    results: Sequence[PhaseResult],
    methods: str,
    elapsed: float,
    floors: dict[str, Acks] | None = None,
    client: str = "raw",
) -> str:
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
            "p50 / p99 are nearest-rank percentiles; ✗ MISSED marks a target not met."
            + _ratio_note(results),
            "",
            table(results),
            "",
            floor_text(floors or {}, client),
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
