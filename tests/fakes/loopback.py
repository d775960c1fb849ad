"""A small aiohttp server on a loopback port chosen by the OS, and the fakes served on one."""

from __future__ import annotations

import asyncio
import socket
from typing import Self

from aiohttp import web


class Loopback:
    """Runs one aiohttp application on ``127.0.0.1`` and an ephemeral port."""

    def __init__(self, app: web.Application) -> None:
        self._app = app
        self._runner: web.AppRunner | None = None
        self.port = 0
        # Handlers that sleep (stalls, delays) wait on this so stop() never hangs on them.
        self.closing = asyncio.Event()

    async def start(self) -> None:
        if self._runner is not None:
            return
        self.closing.clear()
        self._runner = web.AppRunner(self._app, shutdown_timeout=1.0, access_log=None)
        await self._runner.setup()
        # Port 0: the kernel picks a port nobody holds and it stays ours while we listen,
        # so no two servers, in this run or another one on the machine, can collide.
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = bound_port(site)

    async def stop(self) -> None:
        if self._runner is None:
            return
        self.closing.set()
        runner, self._runner = self._runner, None
        await runner.cleanup()

    async def pause(self, seconds: float) -> bool:
        """Sleep up to ``seconds``; True when the server started closing meanwhile."""
        if seconds <= 0:
            return self.closing.is_set()
        try:
            await asyncio.wait_for(self.closing.wait(), seconds)
        except TimeoutError:
            return False
        return True


class LoopbackFake:
    """A fake service behind ``self._server``: ``async with`` starts it and stops it."""

    _server: Loopback

    async def start(self) -> None:
        await self._server.start()

    async def stop(self) -> None:
        await self._server.stop()

    async def __aenter__(self) -> Self:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    @property
    def root_url(self) -> str:
        return f"http://127.0.0.1:{self._server.port}"


def bound_port(site: web.TCPSite) -> int:
    """The port a site started on port 0 got."""
    server = site._server  # aiohttp exposes the bound sockets only here
    sockets: list[socket.socket] = list(getattr(server, "sockets", None) or [])
    if not sockets:
        raise RuntimeError("the server did not bind a socket")
    return int(sockets[0].getsockname()[1])
