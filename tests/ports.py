"""Loopback ports for the child processes the tests start: redis-server and ``python -m bot``.

Servers in this process bind port 0 and read back the port they got (``Loopback``,
``serve``), so they cannot collide. A child process has to be told its port instead, and
picking a free one by binding port 0 and closing the socket races with every bind(0) and
outgoing connection on the machine, other test suites running at once included. Retrying a
child's start-up on EADDRINUSE would mean telling that failure apart in every child's output,
so a port handed out here stays bound, by this process, until the run ends:

- while it is held, the kernel gives it to no bind(0) and no outgoing connection here or in
  any other process, and a plain bind to it fails;
- the socket sets SO_REUSEADDR and never listens, which on Linux (where these tests run: they
  read /proc too) lets a child that also sets SO_REUSEADDR (redis-server and aiohttp both do)
  bind the port and listen on it; while no child listens, a connection to it is refused,
  as to a free port;
- held to the end of the run rather than only until the child starts, a port is never handed
  out twice in one run, and a redis-server can stop and start again on its port.
"""

from __future__ import annotations

import atexit
import socket

_held: list[socket.socket] = []


def reserve_port() -> int:
    """A loopback port no one else gets in this run: for a child process to listen on."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    _held.append(sock)
    return int(sock.getsockname()[1])


@atexit.register
def _release() -> None:
    while _held:
        _held.pop().close()
