"""Running the bot as a real process, and talking to it as Slack does."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import time
from pathlib import Path
from urllib.parse import urlencode

from slack_sdk.signature import SignatureVerifier

from tests.conftest import BOT_TOKEN, INFERENCE_KEY, NO_RUNBOOKS, SIGNING_SECRET
from tests.fakes import FakeInference, FakeSlack

ROOT = Path(__file__).resolve().parent.parent


class BotProcess:
    def __init__(self, proc: asyncio.subprocess.Process, port: int) -> None:
        self.proc = proc
        self.url = f"http://127.0.0.1:{port}"
        self.lines: list[str] = []

    def children(self) -> list[int]:
        """The worker processes this web process started."""
        path = Path(f"/proc/{self.proc.pid}/task/{self.proc.pid}/children")
        return [int(pid) for pid in path.read_text().split()] if path.exists() else []

    async def crash(self) -> None:
        """SIGKILL the web process and its workers at once, as when a dyno dies."""
        for pid in self.children():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        self.proc.kill()
        await self.proc.wait()

    async def wait_for_line(self, needle: str, within: float = 15) -> str:
        assert self.proc.stderr is not None
        async with asyncio.timeout(within):
            while True:
                raw = await self.proc.stderr.readline()
                if not raw:
                    raise AssertionError("process ended:\n" + "".join(self.lines))
                line = raw.decode()
                self.lines.append(line)
                if needle in line:
                    return line


def bot_env(
    slack: FakeSlack,
    inference: FakeInference,
    redis_url: str,
    port: int,
    tmp_path: Path,
    **extra: str,
) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "INFERENCE_"))}
    env.update(
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_SIGNING_SECRET=SIGNING_SECRET,
        SLACK_API_URL=slack.base_url,
        INFERENCE_URL=inference.base_url,
        INFERENCE_KEY=INFERENCE_KEY,
        REDIS_URL=redis_url,
        PORT=str(port),
        RUNBOOKS_FILE=str(NO_RUNBOOKS),
        PYTHONPATH=str(ROOT),
        COPILOT_UPDATE_INTERVAL="0.05",
    )
    env.update(extra)
    return env


def signed(event: dict[str, object]) -> tuple[str, dict[str, str]]:
    body = json.dumps(
        {
            "type": "event_callback",
            "team_id": "T0TEAM",
            "event_id": f"Ev{time.time_ns()}",
            "event": event,
        }
    )
    ts = str(int(time.time()))
    sig = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=ts, body=body)
    return body, {
        "content-type": "application/json",
        "x-slack-request-timestamp": ts,
        "x-slack-signature": sig,
    }


def signed_form(fields: dict[str, str]) -> tuple[str, dict[str, str]]:
    body = urlencode(fields)
    return body, _headers(body, "application/x-www-form-urlencoded")


def _headers(body: str, content_type: str) -> dict[str, str]:
    ts = str(int(time.time()))
    sig = SignatureVerifier(SIGNING_SECRET).generate_signature(timestamp=ts, body=body)
    return {"content-type": content_type, "x-slack-request-timestamp": ts, "x-slack-signature": sig}
