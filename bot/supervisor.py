"""The worker processes a web process starts beside itself (``COPILOT_WORKERS``).

One dyno then runs the web process, which only acknowledges and queues, and workers that
answer, on the dyno's other cores. A worker that dies is started again after a pause that
grows while it keeps dying. At shutdown each worker gets SIGTERM (Heroku sends its own to
every process of the dyno as well) and the time to finish its answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import signal
import sys

log = logging.getLogger(__name__)

MAX_PAUSE = 30.0


class WorkerProcesses:
    def __init__(self, count: int) -> None:
        self._count = count
        self._stopping = False
        self._procs: dict[int, asyncio.subprocess.Process] = {}
        self._keepers: list[asyncio.Task[None]] = []

    @property
    def pids(self) -> list[int]:
        return [proc.pid for proc in self._procs.values() if proc.returncode is None]

    def start(self) -> None:
        self._keepers = [asyncio.create_task(self._keep(slot)) for slot in range(self._count)]

    async def _keep(self, slot: int) -> None:
        pause = 1.0
        while not self._stopping:
            proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot", "worker", "--parent", str(os.getpid()),
                "--slot", str(slot),
            )  # fmt: skip
            self._procs[slot] = proc
            if self._stopping:  # stop() came while this one was starting
                proc.send_signal(signal.SIGTERM)
            log.info("started worker %d (pid %d)", slot + 1, proc.pid)
            started = asyncio.get_running_loop().time()
            code = await proc.wait()
            if self._stopping:
                return
            # A worker that ran for a while earns a quick restart; a crash loop slows down.
            ran = asyncio.get_running_loop().time() - started
            pause = 1.0 if ran > MAX_PAUSE else min(pause * 2, MAX_PAUSE)
            log.error("worker %d exited with code %s; starting it again in %.0f s",
                      slot + 1, code, pause)  # fmt: skip
            await asyncio.sleep(pause)

    async def stop(self, grace: float) -> None:
        """SIGTERM every worker; SIGKILL those still running after ``grace`` seconds."""
        self._stopping = True
        procs = [proc for proc in self._procs.values() if proc.returncode is None]
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
        waits = [proc.wait() for proc in procs]
        try:
            await asyncio.wait_for(asyncio.gather(*waits), grace)
        except TimeoutError:
            for proc in procs:
                if proc.returncode is None:
                    log.error("worker pid %d did not stop in %.0f s; killing it", proc.pid, grace)
                    with contextlib.suppress(ProcessLookupError):
                        proc.kill()
                    await proc.wait()
        for task in self._keepers:
            task.cancel()
        await asyncio.gather(*self._keepers, return_exceptions=True)
