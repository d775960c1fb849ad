"""What arrives at ``POST /slack/events``, checked before anything acts on it.

The order is the point: the signature is checked on the raw bytes first, so an unsigned,
forged or stale request is refused before a byte of it is parsed; then the body is decoded
and its shape checked, so nothing malformed reaches Bolt or our listeners, where a list in
place of an object ends as a 500 and a traceback. Every refusal is a ``DeliveryRefused``
with its status (401 or 400) and a reason for the log; nothing of the body is echoed.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt.request.internals import parse_body

from bot.errors import DeliveryRefused

# Slack's own window: a request signed longer ago (or ahead) than this is a replay.
MAX_AGE_SECONDS = 300
MESSAGE_EVENTS = frozenset({"app_mention", "message"})

_NONE = type(None)
_Types = tuple[type, ...]
# The types of the fields that Bolt or our listeners read, top level and one level down.
# Fields not named here are passed on unread.
_TOP: dict[str, _Types] = {
    "type": (str,),
    "token": (str,),
    "team_id": (str, _NONE),
    "enterprise_id": (str, _NONE),
    "context_team_id": (str, _NONE),
    "context_enterprise_id": (str, _NONE),
    "user_id": (str,),
    "channel_id": (str,),
    "command": (str,),
    "text": (str,),
    "trigger_id": (str,),
    "response_url": (str,),
    "challenge": (str,),
    "event_id": (str,),
    "callback_id": (str,),
    "action_id": (str,),
    "is_enterprise_install": (bool, str),
    "is_ext_shared_channel": (bool,),
    "event": (dict,),
    "user": (dict,),
    "team": (str, dict, _NONE),
    "enterprise": (str, dict, _NONE),
    "channel": (str, dict),
    "container": (dict,),
    "view": (dict,),
    "message": (dict,),
    "workflow_step": (dict,),
    "function_data": (dict,),
    "authorizations": (list,),
    "actions": (list,),
    "response_urls": (list,),
}
_NESTED: dict[str, dict[str, _Types]] = {
    "event": {
        "type": (str,),
        "subtype": (str, _NONE),
        "user": (str, dict),
        "channel": (str, dict),
        "team": (str, _NONE),
        "user_team": (str, _NONE),
        "channel_type": (str,),
        "ts": (str,),
        "thread_ts": (str, _NONE),
        "event_ts": (str,),
        "text": (str, _NONE),
        "bot_id": (str, _NONE),
        "tab": (str,),
        "message": (dict,),
        "previous_message": (dict,),
        "function": (dict,),
        "function_execution_id": (str,),
        "bot_access_token": (str,),
        "inputs": (dict,),
        "assistant_thread": (dict,),
    },
    "user": {"id": (str,), "team_id": (str, _NONE)},
    "team": {"id": (str,), "enterprise_id": (str, _NONE)},
    "enterprise": {"id": (str,)},
    "channel": {"id": (str,)},
    "container": {"message_ts": (str,), "channel_id": (str,), "thread_ts": (str,)},
    "view": {
        "id": (str,),
        "type": (str,),
        "team_id": (str,),
        "app_installed_team_id": (str, _NONE),
    },
    "message": {"ts": (str,), "thread_ts": (str, _NONE), "subtype": (str, _NONE)},
    "authorizations": {
        "team_id": (str, _NONE),
        "enterprise_id": (str, _NONE),
        "user_id": (str,),
        "is_enterprise_install": (bool, str),
    },
    "actions": {"action_id": (str,), "block_id": (str,), "value": (str,), "type": (str,)},
    "response_urls": {"response_url": (str,)},
}
# Fields a payload of this type cannot do without (Bolt indexes them unchecked).
_REQUIRED: dict[str, tuple[str, ...]] = {
    "event_callback": ("event",),
    "block_actions": ("actions",),
    "workflow_step_edit": ("workflow_step",),
}


@dataclass(frozen=True)
class Delivery:
    """A signed request whose body is well formed: ``text`` as Slack sent it (Bolt verifies
    it again), ``body`` parsed."""

    text: str
    body: dict[str, Any]

    @property
    def is_message_event(self) -> bool:
        event = self.body.get("event")
        return (
            self.body.get("type") == "event_callback"
            and isinstance(event, dict)
            and event.get("type") in MESSAGE_EVENTS
        )


class Gate:
    """Admits signed, fresh, well-formed requests. Without a signing secret it admits
    nothing: an HTTP endpoint that cannot check signatures must not act on anything."""

    def __init__(self, signing_secret: str | None, clock: Callable[[], float] = time.time) -> None:
        self._secret: bytes | None = None
        if signing_secret and not signing_secret.isspace():
            self._secret = signing_secret.encode()
        self._clock = clock

    def admit(self, headers: Mapping[str, str], raw: bytes) -> Delivery:
        if self._secret is None:
            raise DeliveryRefused(401, "no signing secret is configured")
        check_signature(self._secret, headers, raw, now=self._clock())
        return read(raw, headers.get("Content-Type"))


def check_signature(secret: bytes, headers: Mapping[str, str], raw: bytes, *, now: float) -> None:
    """Slack's v0 scheme: HMAC-SHA256 of ``v0:{timestamp}:{body}``, within five minutes."""
    timestamp = _ascii_header(headers, "X-Slack-Request-Timestamp")
    signature = _ascii_header(headers, "X-Slack-Signature")
    if not timestamp.isdigit() or len(timestamp) > 12:
        raise DeliveryRefused(401, "the request timestamp is not a number")
    if abs(now - int(timestamp)) > MAX_AGE_SECONDS:
        raise DeliveryRefused(401, "the request timestamp is more than 5 minutes off")
    mac = hmac.new(secret, b"v0:" + timestamp.encode() + b":" + raw, hashlib.sha256)
    if not hmac.compare_digest(f"v0={mac.hexdigest()}".encode(), signature.encode()):
        raise DeliveryRefused(401, "the signature does not match")


def read(raw: bytes, content_type: str | None) -> Delivery:
    """Decode and parse a body exactly as Bolt will, and check its shape."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise DeliveryRefused(400, "the body is not UTF-8") from None
    # Read the media type as Bolt does (no stripping), so both read the body the same way.
    kind = content_type.split(";")[0] if content_type else None
    try:
        body = parse_body(text, kind)
    except (ValueError, RecursionError):  # bad JSON, or JSON nested beyond reading
        raise DeliveryRefused(400, "the body is neither JSON nor a form Slack sends") from None
    if not isinstance(body, dict):
        raise DeliveryRefused(400, "the body is not a JSON object")
    check_shape(body)
    return Delivery(text=text, body=body)


def check_shape(body: dict[str, Any]) -> None:
    _check_fields(body, _TOP, "")
    for name, fields in _NESTED.items():
        value = body.get(name)
        items = value if isinstance(value, list) else [value] if isinstance(value, dict) else []
        for item in items:
            if not isinstance(item, dict):
                raise DeliveryRefused(400, f"{name} holds something other than objects")
            _check_fields(item, fields, f"{name}.")
    for name in _REQUIRED.get(str(body.get("type")), ()):
        if not body.get(name):
            raise DeliveryRefused(400, f"a {body.get('type')} payload without {name}")
    if body.get("type") == "block_actions" and not all("action_id" in a for a in body["actions"]):
        raise DeliveryRefused(400, "an action without action_id")


def _check_fields(values: dict[str, Any], fields: dict[str, _Types], where: str) -> None:
    for name, types in fields.items():
        # bool is an int in Python: check exact types so ``true`` never passes for a number.
        if name in values and type(values[name]) not in types:
            raise DeliveryRefused(400, f"{where}{name} has the wrong type")


def _ascii_header(headers: Mapping[str, str], name: str) -> str:
    value = headers.get(name)
    if not value:
        raise DeliveryRefused(401, f"{name} is missing")
    if not value.isascii():
        raise DeliveryRefused(401, f"{name} is not ASCII")
    return value
