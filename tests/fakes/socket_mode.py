"""Slack's Socket Mode, as the fake workspace speaks it: one WebSocket, envelopes, acks.

``apps.connections.open`` (with the app-level token) answers a ``ws://`` URL on the fake;
the connection gets ``hello``, then whatever envelopes a test sends, and every ack the bot
sends back is recorded.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from typing import Any

from aiohttp import WSMsgType, web

Json = dict[str, Any]


class SocketModeEndpoint:
    def __init__(self) -> None:
        self.acks: list[Json] = []
        self._sockets: list[web.WebSocketResponse] = []
        self._connected = asyncio.Event()

    async def handle(self, request: web.Request) -> web.WebSocketResponse:
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._sockets.append(ws)
        await ws.send_json({"type": "hello", "num_connections": 1,
                            "connection_info": {"app_id": "A0APP"}})  # fmt: skip
        self._connected.set()
        async for message in ws:
            if message.type == WSMsgType.TEXT:
                self.acks.append(json.loads(message.data))
        self._sockets.remove(ws)
        return ws

    async def connected(self, timeout: float = 10.0) -> None:  # noqa: ASYNC109
        await asyncio.wait_for(self._connected.wait(), timeout)

    async def send(self, payload: Json, kind: str = "events_api") -> str:
        """Deliver one envelope to the connected bot; returns its envelope id."""
        envelope_id = uuid.uuid4().hex
        envelope = {"envelope_id": envelope_id, "type": kind, "payload": payload,
                    "accepts_response_payload": kind != "events_api"}  # fmt: skip
        await self._sockets[-1].send_json(envelope)
        return envelope_id

    def acked(self, envelope_id: str) -> bool:
        return any(ack.get("envelope_id") == envelope_id for ack in self.acks)

    async def close(self) -> None:
        for ws in list(self._sockets):
            await ws.close()
