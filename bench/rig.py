"""Starting and stopping what a run needs: a real redis-server and bot processes.

Everything listens on 127.0.0.1 except the bot itself, which binds the address hard-coded in
``bot/__main__.py`` (all interfaces); the benchmark only ever talks to it over loopback.

A bot is a process tree: ``python -m bot`` (the web process) and whatever it starts (its
workers). Its CPU time and memory are read from /proc for every process of the tree.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import signal
import socket
import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import httpx
import redis.asyncio as aioredis

SIGNING_SECRET = "bench-signing-secret"
BOT_TOKEN = "xoxb-test"
INFERENCE_KEY = "inf-test"
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
# The checkout this bench belongs to: its bot package is the one measured, whatever is
# installed in the virtualenv (the bots run in a scratch directory with PYTHONPATH=ROOT).
ROOT = Path(__file__).resolve().parent.parent
# Settings the bot reads from the environment; none may leak in from the caller's shell.
_BOT_ENV_PREFIXES = ("SLACK_", "INFERENCE_", "REDIS_", "COPILOT_", "RUNBOOKS_", "PORT")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A throwaway redis-server on a free loopback port, with no persistence."""

    def __init__(self, workdir: Path) -> None:
        self._workdir = workdir
        self._proc: asyncio.subprocess.Process | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        binary = shutil.which("redis-server")
        if binary is None:
            raise RuntimeError("redis-server is not installed (scripts/bench installs it)")
        self.port = free_port()
        self._proc = await asyncio.create_subprocess_exec(
            *(binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", ""),
            *("--appendonly", "no", "--dir", str(self._workdir)),
            stdout=asyncio.subprocess.DEVNULL,
            stderr=asyncio.subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout
        while True:
            try:
                await self.flush()
                return
            except (OSError, aioredis.ConnectionError):
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.05)

    async def flush(self) -> None:
        client = aioredis.Redis.from_url(self.url)
        try:
            await client.flushall()
        finally:
            await client.aclose()

    async def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None:
            await terminate(proc, grace=10.0)


async def terminate(proc: asyncio.subprocess.Process, grace: float) -> None:
    """SIGTERM, then SIGKILL when the process is still there after ``grace`` seconds."""
    if proc.returncode is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        await asyncio.wait_for(proc.wait(), grace)
    except TimeoutError:
        proc.kill()
        await proc.wait()


@dataclass(frozen=True)
class ProcStat:
    """One OS process of a bot's tree, read from /proc at one moment."""

    pid: int
    start: int  # starttime (clock ticks since boot): with pid, names one process for good
    role: str  # "web" for the process the bench started, "worker" or a program name below it
    cpu: float  # utime + stime, s
    reaped_cpu: float  # cutime + cstime, s: its children that ended and were waited for
    rss_kb: int
    hwm_kb: int

    @property
    def key(self) -> tuple[int, int]:
        return self.pid, self.start


def _stat_fields(pid: int) -> list[str]:
    """/proc/PID/stat from field 3 (state) on; the command name may hold spaces."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    return raw[raw.rindex(")") + 2 :].split()


def _role(pid: int) -> str:
    argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    args = [a.decode(errors="replace") for a in argv if a]
    if "worker" in args[1:]:
        return "worker"
    return Path(args[0]).name if args else "?"


def read_proc(pid: int, role: str | None = None) -> ProcStat | None:
    """The process's CPU times and memory; None when it is gone (or a zombie)."""
    try:
        fields = _stat_fields(pid)
        if fields[0] in ("Z", "X"):
            return None
        memory: dict[str, int] = {}
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                memory[key] = int(rest.split()[0])
        role = role or _role(pid)
    except (OSError, ValueError, IndexError):
        return None
    # fields[0] is field 3; utime, stime, cutime, cstime are fields 14-17, starttime 22.
    return ProcStat(
        pid=pid,
        start=int(fields[19]),
        role=role,
        cpu=(int(fields[11]) + int(fields[12])) / CLOCK_TICKS,
        reaped_cpu=(int(fields[13]) + int(fields[14])) / CLOCK_TICKS,
        rss_kb=memory.get("VmRSS", 0),
        hwm_kb=memory.get("VmHWM", 0),
    )


def alive(key: tuple[int, int]) -> bool:
    """Whether the process (pid, starttime) still runs: not gone, not a zombie, not a new
    process that reuses the pid."""
    pid, start = key
    try:
        fields = _stat_fields(pid)
    except (OSError, ValueError):
        return False
    return fields[0] not in ("Z", "X") and int(fields[19]) == start


_HAS_CHILDREN_FILE = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children").exists()


def children(pid: int) -> list[int]:
    """Direct children of every thread of ``pid`` (empty when it is gone)."""
    found: list[int] = []
    if _HAS_CHILDREN_FILE:
        for task in Path(f"/proc/{pid}/task").glob("*/children"):
            with contextlib.suppress(OSError, ValueError):
                found += [int(child) for child in task.read_text().split()]
        return found
    # Kernels without CONFIG_PROC_CHILDREN: find the processes whose parent is pid.
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError, ValueError, IndexError):
                if int(_stat_fields(int(entry.name))[1]) == pid:
                    found.append(int(entry.name))
    return found


def descendants(pid: int) -> list[int]:
    """Every process below ``pid``, parents before their children."""
    found: list[int] = []
    todo = children(pid)
    while todo:
        child = todo.pop(0)
        if child not in found:
            found.append(child)
            todo += children(child)
    return found


def tree_cpu(procs: list[ProcStat]) -> float:
    """CPU seconds the tree has used so far: every live process's own time plus the time of
    the processes that ended and were waited for, which the kernel adds to their parent's
    cutime/cstime. A worker that exits (and is reaped) mid-phase stays counted."""
    return sum(p.cpu + p.reaped_cpu for p in procs)


@dataclass(frozen=True)
class BotEndpoints:
    slack_api_url: str
    inference_url: str
    redis_url: str


class BotProcess:
    """``python -m bot`` in its own process (the web process) with ``COPILOT_WORKERS`` set to
    ``workers``; it may start worker processes of its own, read here as its process tree."""

    def __init__(self, name: str, endpoints: BotEndpoints, workdir: Path, workers: int) -> None:
        self.name = name
        self.workers = workers
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        self._workdir = workdir
        self._endpoints = endpoints
        self._proc: asyncio.subprocess.Process | None = None
        # The web process's exit code when it had ended before stop() (a crash, or a kill
        # from outside); None while it runs or when stop() ended it.
        self.exited: int | None = None
        self._seen: set[tuple[int, int]] = set()  # every process of the tree read so far

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._proc.pid

    def _env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith(_BOT_ENV_PREFIXES)}
        env.update(
            SLACK_BOT_TOKEN=BOT_TOKEN,
            SLACK_SIGNING_SECRET=SIGNING_SECRET,
            SLACK_API_URL=self._endpoints.slack_api_url,
            INFERENCE_URL=self._endpoints.inference_url,
            INFERENCE_KEY=INFERENCE_KEY,
            REDIS_URL=self._endpoints.redis_url,
            PORT=str(self.port),
            COPILOT_WORKERS=str(self.workers),
            # The bot package of this checkout, not whichever one the venv has installed
            # (an editable install may point at another worktree). Workers inherit it.
            PYTHONPATH=os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        )
        # RUNBOOKS_FILE stays unset: the default runbooks.toml is absent from the scratch
        # directory, which the bot accepts as "no runbooks". Other settings are defaults.
        return env

    async def start(self, timeout: float = 30.0) -> None:  # noqa: ASYNC109
        with self.log_path.open("ab") as log:
            # cwd is a scratch directory so no stray .env file is read.
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                cwd=self._workdir,
                env=self._env(),
                stdout=log,
                stderr=asyncio.subprocess.STDOUT,
            )
        self._proc = proc
        deadline = time.monotonic() + timeout
        async with httpx.AsyncClient(timeout=2.0) as http:
            while True:
                if proc.returncode is not None:
                    tail = self.log_path.read_text(errors="replace")[-2000:]
                    raise RuntimeError(f"{self.name} exited at start-up:\n{tail}")
                with contextlib.suppress(httpx.HTTPError):
                    if (await http.get(f"{self.url}/healthz")).status_code == 200:
                        return
                if time.monotonic() > deadline:
                    raise RuntimeError(f"{self.name} did not become healthy in {timeout}s")
                await asyncio.sleep(0.1)

    async def quiet(
        self, *, window: float = 0.5, wait_workers: float = 5.0, cap: float = 15.0
    ) -> None:
        """After /healthz answers: wait until the tree has its ``workers`` worker processes
        (or ``wait_workers`` seconds passed without them) and used under 10% of a core
        over the last ``window`` seconds, i.e. its start-up work (imports, connecting) is
        over; at most ``cap`` seconds."""
        begun = time.monotonic()
        before = tree_cpu(self.processes())
        while time.monotonic() - begun < cap:
            await asyncio.sleep(window)
            procs = self.processes()
            now = tree_cpu(procs)
            workers = sum(1 for p in procs if p.role == "worker")
            enough = workers >= self.workers or time.monotonic() - begun >= wait_workers
            if enough and now - before < 0.1 * window:
                return
            before = now

    def processes(self) -> list[ProcStat]:
        """The web process and its descendants, as they are now (empty when it is gone).

        The root's cutime is read again after the descendants: when it moved, a child was
        reaped meanwhile and might be counted twice or not at all, so the read is repeated.
        """
        if self._proc is None:
            return []
        root_pid = self._proc.pid
        procs: list[ProcStat] = []
        for _ in range(5):
            root = read_proc(root_pid, "web")
            if root is None:
                return []
            procs = [root]
            for pid in descendants(root_pid):
                found = read_proc(pid)
                if found is not None:
                    procs.append(found)
            again = read_proc(root_pid, "web")
            if again is None or again.reaped_cpu == root.reaped_cpu:
                break
        self._seen |= {p.key for p in procs}
        return procs

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM to the web process (it is the one to stop its workers), then SIGKILL to
        every process of the tree still there after ``grace`` seconds, by pid. When the web
        process has already ended, its orphaned workers get the SIGTERM instead."""
        proc = self._proc
        if proc is None:
            return
        known = self._seen | {p.key for p in self.processes()}
        self._proc = None
        if proc.returncode is None:
            proc.send_signal(signal.SIGTERM)
        else:
            self.exited = proc.returncode
            for key in known:
                if alive(key):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(key[0], signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline:
            for pid, _ in [k for k in known if alive(k)]:
                known |= {p.key for p in map(read_proc, descendants(pid)) if p is not None}
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(proc.wait(), 0.1)
            if proc.returncode is not None and not any(alive(k) for k in known):
                return
        for key in known:
            if alive(key):
                with contextlib.suppress(ProcessLookupError):
                    os.kill(key[0], signal.SIGKILL)
        await proc.wait()

    def log_summary(self) -> Counter[str]:
        """Warning and error lines of the bot's log (JSON lines or plain text), grouped by
        logger and message with numbers masked."""
        counts: Counter[str] = Counter()
        if not self.log_path.exists():
            return counts
        for line in self.log_path.read_text(errors="replace").splitlines():
            found = _json_problem(line) if line.startswith("{") else _text_problem(line)
            if found is not None:
                level, logger, message = found
                message = re.sub(r"\d+(\.\d+)?", "#", message.splitlines()[0] if message else "")
                counts[f"{level.upper()} {logger}: {message[:90]}"] += 1
        return counts


_PROBLEMS = ("warning", "error", "critical")


def _json_problem(line: str) -> tuple[str, str, str] | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    level = str(entry.get("level", "")).lower() if isinstance(entry, dict) else ""
    if level not in _PROBLEMS:
        return None
    return level, str(entry.get("logger", "")), str(entry.get("msg", ""))


def _text_problem(line: str) -> tuple[str, str, str] | None:
    match = re.search(r" (WARNING|ERROR|CRITICAL) (\S+) (.*)$", line)
    if match:
        return match.group(1), match.group(2), match.group(3)
    return ("error", "python", "Traceback") if line.startswith("Traceback") else None
