"""Suggested prompts: what the Messages tab and the manifest offer to ask, from the runbooks.

Each prompt is a question a person could type; Slack sends its ``message`` as theirs when
clicked, so it goes through the same path as any question (the copilot may then propose the
runbook, which still waits for approval). Built from the catalog, so a team's own runbooks
and apps show up without any extra configuration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from bot.runbooks import Catalog, Runbook
from bot.text import clip

# Slack shows at most four suggested prompts.
MAX_PROMPTS = 4
# Titles are buttons: short enough to read at a glance.
_TITLE_CHARS = 75
_ASIDE = re.compile(r"\s*\([^)]*\)")
_FALLBACK = (
    ("What can you do?", "What can you help me with, and which runbooks can you run?"),
    ("Recent releases", "How do I see the last 5 releases of an app?"),
)


@dataclass(frozen=True)
class Prompt:
    title: str
    message: str

    def to_slack(self) -> dict[str, str]:
        return {"title": self.title, "message": self.message}


def from_catalog(catalog: Catalog) -> list[Prompt]:
    """Up to four prompts: diagnose the first app the runbooks name, then one per runbook
    ("Run database migrations on shop-staging"); general ones when there are no runbooks."""
    prompts: list[Prompt] = []
    app = _first_app(catalog)
    if app is not None:
        prompts.append(
            Prompt(
                clip(f"Diagnose {app}", _TITLE_CHARS),
                f"Diagnose {app}: is anything failing, and what changed recently?",
            )
        )
    for runbook in catalog.runbooks.values():
        if runbook.description:
            prompts.append(_for_runbook(runbook))
    if not prompts:
        prompts = [Prompt(title, message) for title, message in _FALLBACK]
    return _distinct(prompts)[:MAX_PROMPTS]


def _for_runbook(runbook: Runbook) -> Prompt:
    choice = _first_choice(runbook)
    where = "" if choice is None else f" on {choice}"
    # Asides such as "(read-only follower)" belong in the question, not on the button.
    title = _ASIDE.sub("", runbook.description).strip() or runbook.description
    return Prompt(clip(title + where, _TITLE_CHARS), runbook.description + where)


def _first_choice(runbook: Runbook) -> str | None:
    for param in runbook.params.values():
        if param.choices:
            return param.choices[0]
    return None


def _first_app(catalog: Catalog) -> str | None:
    for runbook in catalog.runbooks.values():
        choice = _first_choice(runbook)
        if choice is not None:
            return choice
    return None


def _distinct(prompts: list[Prompt]) -> list[Prompt]:
    seen: set[str] = set()
    kept = []
    for prompt in prompts:
        if prompt.title not in seen:
            seen.add(prompt.title)
            kept.append(prompt)
    return kept
