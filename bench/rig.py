"""Starting and stopping what a run needs: a real redis-server and bot processes.

Everything listens on 127.0.0.1 except the bot itself, which binds the address hard-coded in
``bot/__main__.py`` (all interfaces); the benchmark only ever talks to it over loopback.
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
            await _end(proc, grace=10.0)


async def _end(proc: asyncio.subprocess.Process, grace: float) -> None:
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
class Memory:
    rss_kb: int
    hwm_kb: int


@dataclass(frozen=True)
class BotEndpoints:
    slack_api_url: str
    inference_url: str
    redis_url: str


class BotProcess:
    """``python -m bot`` in its own process, so its memory and CPU time can be read."""

    def __init__(self, name: str, endpoints: BotEndpoints, workdir: Path) -> None:
        self.name = name
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / f"{name}.log"
        self._workdir = workdir
        self._endpoints = endpoints
        self._proc: asyncio.subprocess.Process | None = None

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

    def cpu_seconds(self) -> float:
        """utime + stime of the process, from /proc/PID/stat."""
        raw = Path(f"/proc/{self.pid}/stat").read_text()
        fields = raw[raw.rindex(")") + 2 :].split()
        # fields[0] is field 3 (state); utime and stime are fields 14 and 15.
        return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS

    def memory(self) -> Memory:
        values: dict[str, int] = {}
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            key, _, rest = line.partition(":")
            if key in ("VmRSS", "VmHWM"):
                values[key] = int(rest.split()[0])
        return Memory(rss_kb=values.get("VmRSS", 0), hwm_kb=values.get("VmHWM", 0))

    async def stop(self, grace: float = 5.0) -> None:
        """SIGTERM, then SIGKILL if the bot is still draining after ``grace`` seconds."""
        proc, self._proc = self._proc, None
        if proc is not None:
            await _end(proc, grace)

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
