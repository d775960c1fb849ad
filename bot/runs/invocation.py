"""Reading ``/run <runbook> key=value …`` against the runbooks catalog.

Everything a user types is checked here before anything else sees it: the runbook must
exist, every key must be one of its parameters, and every value must pass its ``choices``
or ``pattern``. A refusal says what is allowed; nothing starts.
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass

from bot.errors import RequestRefused
from bot.runbooks import Catalog, Runbook

HELP_WORDS = {"", "help", "-h", "--help", "?"}


@dataclass(frozen=True)
class Invocation:
    """A runbook and its validated parameter values (defaults filled in)."""

    runbook: str
    values: dict[str, str]


def is_help(text: str) -> bool:
    return text.strip().lower() in HELP_WORDS


def parse(text: str, catalog: Catalog) -> Invocation:
    try:
        words = shlex.split(text)
    except ValueError as exc:
        raise RequestRefused(f"I couldn't read that command ({exc}). {_usage()}") from None
    name, args = words[0], words[1:]
    runbook = catalog.runbooks.get(name)
    if runbook is None:
        known = ", ".join(f"`{n}`" for n in catalog.runbooks) or "none are configured"
        raise RequestRefused(f"There is no runbook `{name}`. Runbooks: {known}.")
    return Invocation(name, validate(name, runbook, _pairs(name, runbook, args)))


def _pairs(name: str, runbook: Runbook, args: list[str]) -> dict[str, str]:
    if len(args) == 1 and "=" not in args[0] and len(runbook.required) == 1:
        return {runbook.required[0]: args[0]}
    given: dict[str, str] = {}
    for arg in args:
        key, sep, value = arg.partition("=")
        if not sep or not key:
            raise RequestRefused(f"`{arg}` is not key=value. {_params_line(name, runbook)}")
        if key in given:
            raise RequestRefused(f"`{key}` is given twice.")
        given[key] = value
    return given


def validate(name: str, runbook: Runbook, given: dict[str, str]) -> dict[str, str]:
    """Check keys and values; returns every parameter's value, defaults included."""
    unknown = [key for key in given if key not in runbook.params]
    if unknown:
        raise RequestRefused(
            f"`{name}` has no parameter `{unknown[0]}`. {_params_line(name, runbook)}"
        )
    values: dict[str, str] = {}
    for key, param in runbook.params.items():
        value = given.get(key, param.default)
        if value is None:
            if param.required:
                raise RequestRefused(
                    f"`{name}` needs `{key}` ({param.allowed()}). {_params_line(name, runbook)}"
                )
            value = ""
        elif problem := param.problem(value):
            raise RequestRefused(f"`{key}={value}` is not allowed: {key} {problem}.")
        values[key] = value
    return values


def _params_line(name: str, runbook: Runbook) -> str:
    if not runbook.params:
        return f"Usage: `/run {name}` (it takes no parameters)."
    parts = [f"{key}=<{p.allowed()}>" for key, p in runbook.params.items()]
    return f"Usage: `/run {name} {' '.join(parts)}`."


def _usage() -> str:
    return "Usage: `/run <runbook> key=value …`, or `/run help` for the list."
