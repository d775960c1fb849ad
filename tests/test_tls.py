"""Heroku Key-Value Store speaks TLS with a self-signed certificate: rediss:// must work."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from tests.fakes import FakeInference, FakeSlack
from tests.ports import reserve_port
from tests.processes import wait_for_redis
from tests.rig import serve, settings_for
from tests.scenarios import CHANNEL, mention, wait_answer


def _self_signed(directory: Path) -> tuple[Path, Path]:
    cert, key = directory / "redis.crt", directory / "redis.key"
    subprocess.run(
        [
            "openssl",
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "1",
            "-subj",
            "/CN=ec2-self-signed.compute.amazonaws.com",
            "-keyout",
            str(key),
            "-out",
            str(cert),
        ],
        check=True,
        capture_output=True,
        timeout=60,
    )
    return cert, key


@pytest.fixture
def tls_redis(tmp_path: Path) -> Iterator[str]:
    if shutil.which("openssl") is None:
        pytest.skip("openssl is needed to make a self-signed certificate")
    cert, key = _self_signed(tmp_path)
    port = reserve_port()
    proc = subprocess.Popen(
        [
            "redis-server",
            "--port",
            "0",
            "--tls-port",
            str(port),
            "--bind",
            "127.0.0.1",
            "--tls-cert-file",
            str(cert),
            "--tls-key-file",
            str(key),
            "--tls-ca-cert-file",
            str(cert),
            "--tls-auth-clients",
            "no",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(tmp_path),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"rediss://127.0.0.1:{port}/0"
    wait_for_redis(url, ssl_cert_reqs=None)
    yield url
    proc.terminate()
    proc.wait(timeout=10)


def test_a_strict_client_refuses_the_certificate(tls_redis: str) -> None:
    """Shows the test server is what Heroku serves: verification would fail."""
    client = redis.Redis.from_url(tls_redis)
    with pytest.raises(redis.ConnectionError):
        client.ping()
    client.close()


async def test_the_bot_answers_over_rediss_with_a_self_signed_certificate(
    slack: FakeSlack, inference: FakeInference, tls_redis: str
) -> None:
    inference.reply_text("Over TLS.")
    async with serve(settings_for(slack, inference, tls_redis)) as bot:
        assert (await bot.http.get(f"{bot.url}/healthz")).json()["redis"] == "ok"
        await bot.event(mention("secure?", "40.1"))
        await wait_answer(slack, CHANNEL, "40.1", "Over TLS.")
