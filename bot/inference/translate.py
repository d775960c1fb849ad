"""Foreign failures become ``bot.errors``, here and nowhere else in this package.

    httpx_sse.SSEError (not an SSE)    → InferenceStreamError
    httpx.TimeoutException             → InferenceTimeout
    any other httpx error              → InferenceUnavailable
    HTTP 401/403 → InferenceAuthError, 429 → InferenceRateLimited,
    5xx → InferenceUnavailable, any other non-2xx → InferenceBadRequest
    an error sent inside a stream      → InferenceRateLimited or InferenceStreamError

Messages keep Heroku's own words (e.g. 403 "You do not have access to that model", which
means the key is fine but the model is not provisioned) and never the API key.
"""

from __future__ import annotations

import contextlib
import json
import re
from collections.abc import Iterator
from typing import Any

import httpx
from httpx_sse import SSEError

from bot.errors import (
    InferenceAuthError,
    InferenceBadRequest,
    InferenceError,
    InferenceRateLimited,
    InferenceStreamError,
    InferenceTimeout,
    InferenceUnavailable,
)
from bot.redact import mask

CLIP = 200
_DURATION = re.compile(r"(?:\d+(?:\.\d+)?(?:ms|h|m|s))+")
_DURATION_PART = re.compile(r"(\d+(?:\.\d+)?)(ms|h|m|s)")
_UNIT_SECONDS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 0.001}


@contextlib.contextmanager
def httpx_errors() -> Iterator[None]:
    """Translate httpx (and httpx-sse) exceptions raised inside the block."""
    try:
        yield
    except SSEError as exc:  # first: it subclasses httpx.TransportError
        raise InferenceStreamError(f"Heroku Inference did not stream events: {exc}") from exc
    except httpx.TimeoutException as exc:
        raise InferenceTimeout(f"Heroku Inference timed out ({_name(exc)})") from exc
    except (httpx.HTTPError, httpx.InvalidURL) as exc:
        raise InferenceUnavailable(f"Heroku Inference connection failed ({_name(exc)})") from exc


def status_error(response: httpx.Response) -> InferenceError:
    """The typed error for a non-2xx response whose body has been read."""
    status = response.status_code
    words = error_message(response.content) or response.reason_phrase or "no details"
    message = f"HTTP {status}: {words}"
    if status in (401, 403):
        return InferenceAuthError(message, status=status)
    if status == 429:
        return InferenceRateLimited(message, retry_after=retry_after(response.headers))
    if status >= 500:
        return InferenceUnavailable(message, status=status)
    return InferenceBadRequest(message, status=status)


def stream_error(payload: object) -> InferenceError:
    """The typed error for an error object Heroku sent inside a 200 stream."""
    message = f"error inside the stream: {describe_error(payload)}"
    details = _nested_error(payload)
    code = details.get("code")
    if details.get("type") == "rate_limit_error" or code in (429, "429"):
        return InferenceRateLimited(message)
    return InferenceStreamError(message, status=code if isinstance(code, int) else None)


def error_message(body: bytes) -> str:
    """Readable words from an error body: JSON in either of Heroku's shapes, or plain text."""
    try:
        payload = json.loads(body)
    except ValueError:
        return clip(body.decode("utf-8", "replace"))
    return describe_error(payload)


def describe_error(payload: object) -> str:
    """``{"error": {"message": …}}``, ``{"error": "…", "message": "…"}``, or anything else."""
    if isinstance(payload, str):
        return clip(payload)
    if not isinstance(payload, dict):
        return clip(json.dumps(payload))
    error = payload.get("error")
    candidates = [error, _nested_error(payload).get("message"), payload.get("message")]
    words = [c for c in dict.fromkeys(c for c in candidates if isinstance(c, str)) if c]
    return clip(": ".join(words)) if words else clip(json.dumps(payload))


def retry_after(headers: httpx.Headers) -> float | None:
    """Seconds to wait: ``Retry-After``, else the reset time of the exhausted rate limit."""
    seconds = parse_duration(headers.get("retry-after", ""))
    if seconds is not None:
        return seconds
    # Heroku limits requests and tokens separately; prefer the one that ran out.
    kinds = [k for k in ("requests", "tokens") if headers.get(f"x-ratelimit-remaining-{k}") == "0"]
    resets = [
        parse_duration(headers.get(f"x-ratelimit-reset-{k}", ""))
        for k in kinds or ("requests", "tokens")
    ]
    known = [r for r in resets if r is not None]
    return max(known) if known else None


def parse_duration(text: str) -> float | None:
    """``"51"``, ``"51s"``, ``"1m30s"``, ``"500ms"`` → seconds; None for anything else."""
    text = text.strip()
    if re.fullmatch(r"\d+(?:\.\d+)?", text):
        return float(text)
    if not _DURATION.fullmatch(text):
        return None
    return sum(float(n) * _UNIT_SECONDS[unit] for n, unit in _DURATION_PART.findall(text))


def clip(text: str, limit: int = CLIP) -> str:
    """Words for an error message: masked before the cut, or half a secret would show."""
    text = " ".join(mask(text).split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _nested_error(payload: object) -> dict[str, Any]:
    error = payload.get("error") if isinstance(payload, dict) else None
    return error if isinstance(error, dict) else {}


def _name(exc: Exception) -> str:
    # httpx messages name the host and OS error, never headers, so they are safe to show.
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
