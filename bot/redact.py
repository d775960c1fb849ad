"""Masking credentials before anything is posted to Slack or logged.

Agent output is command output: connection strings, tokens and keys turn up in it (peers
have printed secrets into channels). Masking keeps what makes the text recognisable (a URL's
scheme, user and host, a variable's name, a token's kind) and hides the secret itself.

``mask`` works on a whole text. Text that arrives in pieces is masked by ``bot.untrusted``,
which cuts it where no secret is broken: not inside a match (``spans``), and not after the
start of a secret the next piece could complete (``unfinished``).

Known limits: an unquoted value ends at the first space (``password: correct horse`` keeps
"horse"); a bare key with no name or shape we know (a UUID on its own) is not a secret to us.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

MASK = "••••"

# A name that says its value is secret: DB_PASSWORD, client_secret, X-Api-Key, REDIS_PASS,
# GOOGLE_CREDENTIALS, HEROKU_API_KEY, spring.datasource.password. Not counts: max_tokens.
_NAME = (
    r"[\w.-]{0,60}?(?:password|passwd|passphrase|secret|token(?!s\b)|api[_-]?key|access[_-]?key"
    r"|private[_-]?key|[_-]key|credentials?)[\w.-]{0,60}"
    r"|[\w.-]{0,60}?[_-](?:pass|pwd)(?![\w])"
)
_SECRET_NAME = re.compile(rf"(?i){_NAME}")
_NAME_HINTS = ("pass", "pwd", "secret", "token", "key", "credential")
_SEPARATOR = r"[ \t]*(?:=>|:=|[:=])[ \t]*"
# An unquoted value: up to a space, a quote, a comma or semicolon (the next field), a backtick.
_BARE = r"[^\s\"',;`]"
# A quoted value, or one whose closing quote never came: masked to the end of its line.
_QUOTED = r"\"(?:\\.|[^\"\\\n])+(?:\"|$)|'(?:\\.|[^'\\\n])+(?:'|$)"
# Any ``name = value``; whether the name says secret is checked on the match, which is much
# faster than asking the regex to find secret names inside every word.
_ASSIGNMENT = re.compile(
    rf"(?m)(?<![\w.-])(?P<name>(?P<q>[\"']?)(?P<word>[\w.-]{{1,120}})(?P=q){_SEPARATOR})"
    rf"(?:(?P<quoted>{_QUOTED})|(?P<bare>{_BARE}{{4,}}))"
)
_NOT_SECRET = re.compile(rf"(?i)(?:null|none|nil|true|false)|.*{MASK}")
_PEM = re.compile(
    r"-----BEGIN ((?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?)-----"
    r"[\s\S]*?(?:-----END [A-Z0-9 ]*-----|\Z)"
)
# scheme://user:password@host, the password possibly holding "/", "@" or "%": it runs to the
# last "@" before the query, so the host after it stays readable.
_URL_PASSWORD = re.compile(r"(?i)([a-z][a-z0-9+.-]*://[^\s:/@\"'<>|`]*):[^\s\"'<>|`?#]*@(?=\w)")


def _assignment(match: re.Match[str]) -> str:
    name, bare, quoted = match["name"], match["bare"], match["quoted"]
    if not _SECRET_NAME.fullmatch(match["word"]):
        # Not a secret itself, but its value may hold one: cmd="export DB_PASS=…".
        return name + _ASSIGNMENT.sub(_assignment, match[0][len(name) :])
    if bare and _NOT_SECRET.fullmatch(bare):
        return match[0]
    return name + (f"{quoted[0]}{MASK}{quoted[0]}" if quoted else MASK)


@dataclass(frozen=True)
class _Rule:
    pattern: re.Pattern[str]
    replacement: str | Callable[[re.Match[str]], str]
    # Lower-case strings one of which a match must contain: a cheap test that skips the
    # regex for most texts (masking runs on every message and log line).
    hints: tuple[str, ...]


_RULES = [
    # Private keys first: their bodies would otherwise be half-matched by other rules. A key
    # cut off before its END line is masked to the end of the text.
    _Rule(_PEM, rf"-----BEGIN \1----- {MASK} -----END \1-----", ("-----begin",)),
    _Rule(_URL_PASSWORD, rf"\1:{MASK}@", ("://",)),
    _Rule(
        re.compile(r"(?i)\b(hooks\.slack\.com/(?:services|workflows|triggers)/)[\w/-]+"),
        rf"\1{MASK}",
        ("hooks.slack.com",),
    ),
    # Tokens known by their shape; the kind stays visible.
    _Rule(
        re.compile(r"\b(xox[a-z](?:\.xox[a-z])?-|xapp-)[A-Za-z0-9-]{8,}"),
        rf"\1{MASK}",
        ("xox", "xapp-"),
    ),
    _Rule(
        re.compile(r"\b((?:sk|rk)_(?:live|test)_|whsec_)[A-Za-z0-9]{8,}"),
        rf"\1{MASK}",
        ("k_live_", "k_test_", "whsec_"),
    ),
    _Rule(
        re.compile(r"\b(github_pat_)\w{20,}|\b(gh[pousr]_)[A-Za-z0-9]{20,}"),
        rf"\1\2{MASK}",
        ("github_pat_", "ghp_", "gho_", "ghu_", "ghs_", "ghr_"),
    ),
    _Rule(re.compile(r"\bAIza[\w-]{30,}"), f"AIza{MASK}", ("aiza",)),
    _Rule(re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), rf"\1{MASK}", ("akia", "asia")),
    _Rule(re.compile(r"\bsk-[\w-]{16,}"), f"sk-{MASK}", ("sk-",)),
    _Rule(re.compile(r"\binf-[A-Za-z0-9-]{8,}"), f"inf-{MASK}", ("inf-",)),
    _Rule(re.compile(r"\bHRKU-[\w-]{8,}"), f"HRKU-{MASK}", ("hrku-",)),
    _Rule(re.compile(r"\beyJ[\w-]{8,}\.eyJ[\w-]{8,}\.[\w-]*"), f"eyJ{MASK}", ("eyj",)),  # JWT
    # Credentials by what comes before them.
    _Rule(
        re.compile(
            r"(?i)\b((?:proxy-)?authorization[\"']?[ \t]*[:=][ \t]*[\"']?[ \t]*"
            rf"(?:(?:basic|bearer|token|apikey|key)[ \t]+)?){_BARE}{{4,}}"
        ),
        rf"\1{MASK}",
        ("authorization",),
    ),
    _Rule(re.compile(r"(?i)\b(bearer[ \t]+)[\w.~+/=-]{12,}"), rf"\1{MASK}", ("bearer",)),
    _Rule(_ASSIGNMENT, _assignment, _NAME_HINTS),
    # .netrc, where the Heroku CLI keeps its key: "password <key>", no separator.
    _Rule(
        re.compile(rf"(?i)(?<![\w.-])(password[ \t]+)(?={_BARE}*\d){_BARE}{{8,}}"),
        rf"\1{MASK}",
        ("password",),
    ),
]

_ANY_HINT = re.compile("|".join(re.escape(hint) for rule in _RULES for hint in rule.hints))

# Where a secret may have begun that the text to come could still complete, through a
# space: a secret's name and separator (and an open quote), an Authorization header or a
# "password" waiting for their value. Each reaches the end of the text (whose last word may
# be cut short) and stays on its line; hints as above.
_UNFINISHED_ON_LINE: list[tuple[re.Pattern[str], tuple[str, ...]]] = [
    (
        re.compile(
            rf"(?i)(?<![\w.-])[\"']?(?:{_NAME})[\"']?[ \t]*(?:(?:=>|:=|[:=])[ \t]*"
            rf"(?:\"(?:\\.|[^\"\\\n])*|'(?:\\.|[^'\\\n])*|\S*))?\Z"
        ),
        _NAME_HINTS,
    ),
    (re.compile(r"(?i)(?<![\w.-])password[ \t]+\S*\Z"), ("password",)),
    (
        re.compile(
            r"(?i)\b(?:proxy-)?authorization[\"']?[ \t]*"
            r"(?:[:=][ \t]*[\"']?[ \t]*(?:\w+[ \t]+)?\S*)?\Z"
        ),
        ("authorization",),
    ),
    (re.compile(r"(?i)\bbearer(?:[ \t]+\S*)?\Z"), ("bearer",)),
]
_UNFINISHED_KEY = re.compile(r"-----BEGIN (?:(?!-----END [A-Z0-9 ]*-----)[\s\S])*\Z")


def mask(text: str) -> str:
    lowered = text.lower()
    if not _ANY_HINT.search(lowered):
        return text  # most text: nothing any rule could match
    for rule in _RULES:
        if _any_in(lowered, rule.hints):
            text = rule.pattern.sub(rule.replacement, text)
            lowered = text.lower()
    return text


def unfinished(text: str) -> int | None:
    """Where in ``text`` a secret begins that the text to come could complete, if anywhere.

    A secret with no space in it lies within the last word, which ``text`` may have cut
    short; these are the ones that reach further back: a secret's name waiting for its
    value (maybe quoted, with spaces), and a private key before its END line."""
    start = text.rfind("\n") + 1
    line = text[start:].lower()
    found = [p.search(text, start) for p, hints in _UNFINISHED_ON_LINE if _any_in(line, hints)]
    if "-----BEGIN " in text:
        found.append(_UNFINISHED_KEY.search(text))
    return min((m.start() for m in found if m is not None), default=None)


def spans(text: str) -> list[tuple[int, int]]:
    """Where each rule matches in ``text``: a cut inside one would break a secret in two."""
    lowered = text.lower()
    if not _ANY_HINT.search(lowered):
        return []
    return [
        match.span()
        for rule in _RULES
        if _any_in(lowered, rule.hints)
        for match in rule.pattern.finditer(text)
    ]


def _any_in(text: str, hints: tuple[str, ...]) -> bool:
    return any(hint in text for hint in hints)
