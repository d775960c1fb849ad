"""Masking credentials before anything is posted to Slack.

Agent output is command output: connection strings, tokens and keys turn up in it (peers
have printed secrets into channels). Masking keeps enough to recognise what it was.
"""

from __future__ import annotations

import re

MASK = "••••"

_RULES: list[tuple[re.Pattern[str], str]] = [
    # scheme://user:password@host → keep scheme, user and host
    (re.compile(r"\b([a-z][a-z0-9+.-]*://[^\s:/@]*):[^\s@/]+@"), rf"\1:{MASK}@"),
    # Slack, Heroku Inference, Heroku API, GitHub, AWS, OpenAI/Anthropic-style keys
    (re.compile(r"\b(xox[abposr]|xapp)-[A-Za-z0-9-]{8,}"), rf"\1-{MASK}"),
    (re.compile(r"\binf-[A-Za-z0-9-]{8,}"), f"inf-{MASK}"),
    (re.compile(r"\bHRKU-[A-Za-z0-9_-]{8,}"), f"HRKU-{MASK}"),
    (re.compile(r"\bgh[pousr]_[A-Za-z0-9]{20,}"), MASK),
    (re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), MASK),
    (re.compile(r"\bsk-[A-Za-z0-9_-]{16,}"), f"sk-{MASK}"),
    (re.compile(r"(?i)\b(bearer)\s+[A-Za-z0-9._~+/=-]{12,}"), rf"\1 {MASK}"),
    # KEY=value and "key": "value" for names that say secret
    (
        re.compile(
            r"(?i)\b([A-Z0-9_]*(?:PASSWORD|PASSWD|SECRET|TOKEN|API_?KEY|PRIVATE_KEY|_KEY)"
            r"[A-Z0-9_]*)(\"?\s*[=:]\s*)(\"?)[^\s\"',;]{4,}"
        ),
        rf"\1\2\3{MASK}",
    ),
    (
        re.compile(r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?-----END [A-Z ]*PRIVATE KEY-----"),
        f"-----PRIVATE KEY {MASK}-----",
    ),
]


def mask(text: str) -> str:
    for pattern, replacement in _RULES:
        text = pattern.sub(replacement, text)
    return text
