"""Building the Redis client (Heroku's ``rediss://`` URLs, or an in-process store), and
translating its failures at this seam."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import redis
import redis.asyncio as aioredis
from redis.exceptions import RedisError

from bot.errors import StateError

log = logging.getLogger(__name__)


def connect(url: str | None, *, max_connections: int = 10) -> aioredis.Redis:
    """A client for ``url``; with no URL, an embedded store that lives in this process.

    The pool blocks rather than fails when all ``max_connections`` are busy: Heroku's small
    Key-Value Store plans allow 20 connections for all dynos together, and commands are
    short, so waiting a moment for a connection is better than an error."""
    if url is None:
        log.warning(
            "REDIS_URL is not set: using an embedded in-process store. Thread state is not "
            "persistent and not shared between processes; set REDIS_URL for production."
        )
        return _embedded()
    options: dict[str, Any] = {
        "health_check_interval": 30,
        "socket_connect_timeout": 5,
        "socket_timeout": 10,
        "retry_on_timeout": True,
        "decode_responses": True,
    }
    if url.startswith("rediss://"):
        # Heroku Key-Value Store presents a self-signed certificate.
        options["ssl_cert_reqs"] = None
    pool = aioredis.BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=10, **options
    )
    return aioredis.Redis(connection_pool=pool)


def connect_sync(url: str, *, read_timeout: float) -> redis.Redis:
    """A small synchronous client for a thread of its own (the heartbeat): it shares no
    pool, so it never waits behind the event loop's commands. ``read_timeout`` must
    exceed the longest blocking command it sends."""
    options: dict[str, Any] = {"socket_connect_timeout": 2, "decode_responses": True}
    if url.startswith("rediss://"):
        options["ssl_cert_reqs"] = None
    return redis.Redis.from_url(url, socket_timeout=read_timeout, max_connections=2, **options)


def _embedded() -> aioredis.Redis:
    import fakeredis

    client: aioredis.Redis = fakeredis.FakeAsyncRedis(decode_responses=True)
    return client


@asynccontextmanager
async def redis_errors() -> AsyncIterator[None]:
    """Translate redis-py failures into StateError at this seam."""
    try:
        yield
    except RedisError as exc:
        raise StateError(f"state store unavailable ({type(exc).__name__})") from exc
    except OSError as exc:
        raise StateError(f"state store unreachable ({type(exc).__name__})") from exc
