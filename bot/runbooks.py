"""The runbooks file: what ``/run`` may start, with which tools, and who must approve.

Loaded and validated once at start-up (DESIGN.md §3). Errors name the runbook, the key and
the line. Parameter values are checked against ``choices`` or ``pattern`` and are the only
thing substituted into ``{name}`` placeholders: tools and ``runtime_params`` otherwise come
from this file exactly as written.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from bot.errors import ConfigError

# A parameter without choices or pattern still may not carry spaces or shell syntax, and
# (below) may not read as an option, an absolute path, a parent directory or a URL.
DEFAULT_PATTERN = r"^[A-Za-z0-9._:/@=+-]{1,200}$"
DEFAULT_ALLOWED = "letters, digits and . _ : / @ = + - (not starting with - or /, no .. or ://)"
_DEFAULT_REFUSED = (
    (re.compile(r"^[-/]"), "may not start with - or /"),
    (re.compile(r"\.\."), "may not contain .."),
    (re.compile(r"://"), "may not contain ://"),
)
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")


class Param(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    choices: list[str] | None = None
    pattern: str | None = None
    required: bool = True
    default: str | None = None

    @model_validator(mode="after")
    def _check(self) -> Param:
        if self.pattern is not None:
            try:
                re.compile(self.pattern, re.ASCII)
            except (re.error, ValueError) as exc:  # ValueError: (?u), which ASCII excludes
                raise ValueError(f"pattern is not a valid regular expression ({exc})") from None
        if self.default is not None and self.problem(self.default):
            raise ValueError(f"default {self.default!r} is not an allowed value")
        return self

    def problem(self, value: str) -> str | None:
        """Why ``value`` is refused, or None when it is allowed."""
        if self.choices is not None:
            return None if value in self.choices else f"must be one of {', '.join(self.choices)}"
        # Look-alike letters (Cyrillic 'а') and other digits ('١') would pass \w or \d,
        # and control characters have no place in a value: printable ASCII only.
        if not (value.isascii() and value.isprintable()):
            return "may use only printable ASCII characters"
        if self.pattern is not None:
            matched = re.fullmatch(self.pattern, value, re.ASCII)
            return None if matched else f"must match {self.pattern}"
        if not re.fullmatch(DEFAULT_PATTERN, value):
            return "may use only letters, digits and . _ : / @ = + - (1 to 200 of them)"
        return next((why for rule, why in _DEFAULT_REFUSED if rule.search(value)), None)

    def allowed(self) -> str:
        if self.choices is not None:
            return " | ".join(self.choices)
        if self.pattern is not None:
            return f"pattern {self.pattern}"
        return DEFAULT_ALLOWED


class Tool(BaseModel):
    # Unknown keys pass through to the Agents API untouched: the file is the authority.
    model_config = ConfigDict(extra="allow")

    type: str
    name: str
    description: str | None = None
    runtime_params: dict[str, Any] = Field(default_factory=dict)

    @model_validator(mode="after")
    def _placeholders_only_in_runtime_params(self) -> Tool:
        # Which tool runs must never depend on user input: values fill runtime_params only.
        outside = self.model_dump(exclude={"runtime_params"}, exclude_none=True)
        found = sorted(_placeholders_in(outside))
        if found:
            raise ValueError(
                f"placeholder {{{found[0]}}} is only allowed in prompt and runtime_params"
            )
        return self

    def rendered(self, values: dict[str, str]) -> dict[str, Any]:
        body = self.model_dump(exclude_none=True)
        body["runtime_params"] = render(self.runtime_params, values)
        return body


class Policy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    approvers: list[str] = Field(default_factory=list)
    requesters: list[str] = Field(default_factory=list)
    channels: list[str] = Field(default_factory=list)
    approval_ttl_seconds: int = Field(default=900, ge=1, le=7 * 24 * 3600)
    allow_self_approval: bool = False
    # Limits that hold across every process of the app (counted in Redis).
    max_runs_per_user_per_hour: int = Field(default=20, ge=1, le=10_000)
    max_runs_in_flight: int = Field(default=10, ge=1, le=1_000)
    max_questions_per_user_per_minute: int = Field(default=10, ge=1, le=1_000)
    # Slack Connect users from other workspaces, and guests, get one polite refusal.
    allow_external_users: bool = False


class Runbook(BaseModel):
    model_config = ConfigDict(extra="forbid")

    description: str = ""
    prompt: str
    approval: bool = True
    approvers: list[str] | None = None
    params: dict[str, Param] = Field(default_factory=dict)
    tools: list[Tool] = Field(default_factory=list)

    @model_validator(mode="after")
    def _placeholders_are_params(self) -> Runbook:
        unknown = sorted(self.placeholders() - set(self.params))
        if unknown:
            raise ValueError(f"placeholder {{{unknown[0]}}} names no parameter of this runbook")
        return self

    def placeholders(self) -> set[str]:
        """The parameter names that ``{name}`` placeholders use."""
        used = set(_PLACEHOLDER.findall(self.prompt))
        for tool in self.tools:
            used |= _placeholders_in(tool.runtime_params)
        return used

    @property
    def required(self) -> list[str]:
        return [name for name, p in self.params.items() if p.required and p.default is None]


class Catalog(BaseModel):
    model_config = ConfigDict(extra="forbid")

    policy: Policy = Field(default_factory=Policy)
    runbooks: dict[str, Runbook] = Field(default_factory=dict)

    def approvers_for(self, name: str) -> list[str]:
        own = self.runbooks[name].approvers
        return own if own is not None else self.policy.approvers


DEFAULT_FILE = "runbooks.toml"


def load_catalog(path: str | Path, *, missing_ok: bool | None = None) -> Catalog:
    """Read and validate the runbooks file. Only the default file may be missing (no
    runbooks then): a path someone set and mistyped must not quietly disable /run."""
    file = Path(path)
    if not file.exists():
        if missing_ok if missing_ok is not None else str(path) == DEFAULT_FILE:
            return Catalog()
        raise ConfigError(f"RUNBOOKS_FILE {file} does not exist.")
    text = file.read_text(encoding="utf-8")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{file}: not valid TOML: {exc}.") from None
    try:
        catalog = Catalog.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(_describe(file, text, exc)) from None
    _check_approvers(file, text, catalog)
    _check_optional_placeholders(file, text, catalog)
    return catalog


def _check_approvers(file: Path, text: str, catalog: Catalog) -> None:
    for name, runbook in catalog.runbooks.items():
        if runbook.approval and not catalog.approvers_for(name):
            line = _line_of(text, ("runbooks", name))
            raise ConfigError(
                f"{file}:{line}: runbook '{name}' needs approval but nobody may approve it: "
                "set approvers in [policy] or in the runbook, or approval = false."
            )


def _check_optional_placeholders(file: Path, text: str, catalog: Catalog) -> None:
    # An optional parameter left out would render as nothing: "migrate  and summarize".
    for name, runbook in catalog.runbooks.items():
        for key in sorted(runbook.placeholders()):
            param = runbook.params[key]
            if not param.required and param.default is None:
                line = _line_of(text, ("runbooks", name, "params", key, "required"))
                raise ConfigError(
                    f"{file}:{line}: runbook '{name}', parameter '{key}': it is optional "
                    f"and has no default, but {{{key}}} is used: give it a default, or make "
                    "it required."
                )


def _describe(file: Path, text: str, exc: ValidationError) -> str:
    first = exc.errors()[0]
    loc = tuple(str(part) for part in first["loc"])
    line = _line_of(text, loc)
    where = f"runbook '{loc[1]}', " if len(loc) > 1 and loc[0] == "runbooks" else ""
    key = ".".join(loc[2:] if where else loc) or "file"
    reason = first["msg"].removeprefix("Value error, ")
    if first["type"] == "extra_forbidden":
        reason = "unknown key (check its spelling against the README's runbook reference)"
    return f"{file}:{line}: {where}key '{key}': {reason}."


def _line_of(text: str, loc: tuple[str, ...]) -> int:
    """Best line for a validation location: the key's own line, else its table's header."""
    lines = text.splitlines()
    parts = [p for p in loc if not p.isdigit()]
    best = 1
    for depth in range(len(parts), 0, -1):
        header = re.compile(r"^\s*\[\[?\s*" + r"\s*\.\s*".join(map(re.escape, parts[:depth])))
        for number, line in enumerate(lines, start=1):
            if header.match(line):
                best = number
                return _key_line(lines, number, parts[depth:]) or best
    return best


def _key_line(lines: list[str], header: int, rest: list[str]) -> int | None:
    if not rest:
        return header
    key = re.compile(rf"^\s*{re.escape(rest[0])}\s*=")
    for number in range(header, len(lines)):
        if lines[number].lstrip().startswith("["):
            break
        if key.match(lines[number]):
            return number + 1
    return None


def _placeholders_in(value: Any) -> set[str]:
    if isinstance(value, str):
        return set(_PLACEHOLDER.findall(value))
    if isinstance(value, dict):
        return set().union(*(_placeholders_in(v) for v in value.values()))
    if isinstance(value, list):
        return set().union(*(_placeholders_in(v) for v in value))
    return set()


def render(value: Any, values: dict[str, str]) -> Any:
    """Substitute validated parameter values into every string inside ``value``."""
    if isinstance(value, str):
        return _PLACEHOLDER.sub(lambda m: values.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {k: render(v, values) for k, v in value.items()}
    if isinstance(value, list):
        return [render(v, values) for v in value]
    return value


RUN_SYSTEM_PROMPT = (
    "You are carrying out an operations runbook on Heroku for an on-call team. Use only the "
    "tools you are given, exactly as configured. Report what you ran and what it returned, "
    "then give a short conclusion. Never reveal credentials that appear in tool output."
)


def agent_body(runbook: Runbook, values: dict[str, str], model: str) -> dict[str, Any]:
    """The exact Agents API request for a runbook and its validated values."""
    tools = [tool.rendered(values) for tool in runbook.tools]
    return {
        "model": model,
        "messages": [
            {"role": "system", "content": RUN_SYSTEM_PROMPT},
            {"role": "user", "content": render(runbook.prompt, values)},
        ],
        "tools": tools,
    }
