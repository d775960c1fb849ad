"""The requests a button command acts on when no card on screen has that button.

A second terminal on the same Redis (an approver's, beside the requester's) shows none of
the cards the first one posted. There ``/approve`` and ``/deny`` offer what App Home lists
as waiting for this person's decision, and ``/withdraw`` and ``/start`` the person's own
pending requests (``/start`` only those that need no approval). One waiting: the shell
says which and clicks for it. Several: a numbered list, oldest first, and ``/approve 2``
or ``/approve 3f2a`` (an id prefix) picks one. None: it says so.

A number means a line of the list this session showed last, never a list recomputed
behind the person's back: a request decided elsewhere in between gets the same "already
approved" answer a stale card's button gets. The shell only chooses what to click for;
``RunService.decide`` still checks approvers, self-approval and expiry, and audits.
"""

from __future__ import annotations

import re
import time
from dataclasses import dataclass

from bot.render import buttons
from bot.runs import RunRecord
from bot.runs.service import RunService
from bot.shell.render import BUTTON_COMMANDS

_NUMBER = re.compile(r"[0-9]{1,3}")  # longer digit runs are id prefixes
_ID_SHOWN = 8


@dataclass(frozen=True)
class _Listing:
    """One kind of list: which requests it holds and how the shell names it."""

    none: str
    several: str  # formatted with the count


_DECIDE = _Listing("no request is waiting for your approval", "{} requests wait for your approval")
_OWN = _Listing("you have no request waiting", "you have {} requests waiting")
_START = _Listing("you have no request waiting for Run", "you have {} requests waiting for Run")
_LISTINGS = {
    buttons.APPROVE: _DECIDE,
    buttons.DENY: _DECIDE,
    buttons.WITHDRAW: _OWN,
    buttons.RUN_NOW: _START,
}
_VERBS = {
    buttons.APPROVE: "approving",
    buttons.DENY: "denying",
    buttons.WITHDRAW: "withdrawing",
    buttons.RUN_NOW: "starting",
}
OFFERED = frozenset(_LISTINGS)  # /cancel acts only on a card on screen


@dataclass(frozen=True)
class Pick:
    """What to tell the person, and the request to click for if one was chosen."""

    lines: list[str]
    record: RunRecord | None = None


class Offers:
    """The requests waiting for one person, and the numbered list last shown to them."""

    def __init__(self, runs: RunService) -> None:
        self._runs = runs
        self._shown: tuple[_Listing, list[RunRecord]] | None = None

    def forget(self) -> None:
        """A new person at the keyboard: numbers from the old list mean nothing to them."""
        self._shown = None

    async def pick(self, user: str, action_id: str, command: str, wanted: str) -> Pick:
        """The request ``command wanted`` means: by list number, id prefix, or the only one."""
        listing = _LISTINGS[action_id]
        if is_number(wanted):
            return self._numbered(action_id, command, int(wanted))
        found = [r for r in await self._waiting(user, action_id) if r.id.startswith(wanted)]
        if not found:
            starting = f" with an id starting {wanted}" if wanted else ""
            return Pick([f"no card on screen offers {command}, and {listing.none}{starting}"])
        if len(found) == 1:
            return Pick([f"{_VERBS[action_id]} {summary(found[0])}"], found[0])
        self._shown = (listing, found)
        hint = f"type {_commands(listing)} with a number from this list, or an id prefix:"
        lines = [f"{listing.several.format(len(found))}; {hint}"]
        return Pick(lines + [f"  {n}. {summary(r)}" for n, r in enumerate(found, 1)])

    def _numbered(self, action_id: str, command: str, number: int) -> Pick:
        listing = _LISTINGS[action_id]
        shown = self._shown[1] if self._shown and self._shown[0] is listing else []
        if not 1 <= number <= len(shown):
            return Pick([f"no request {number} on a list shown here: type {command} to list them"])
        record = shown[number - 1]
        return Pick([f"{_VERBS[action_id]} {summary(record)}"], record)

    async def _waiting(self, user: str, action_id: str) -> list[RunRecord]:
        overview = await self._runs.overview(user)
        listing = _LISTINGS[action_id]
        if listing is _DECIDE:
            records = list(overview.to_decide)
        else:
            # Self-approval puts one's own requests in to_decide rather than in asked.
            mine = {r.id: r for r in [*overview.to_decide, *overview.asked] if r.requester == user}
            records = list(mine.values())
            if listing is _START:
                records = [r for r in records if not r.needs_approval]
        # Soonest to expire (the oldest) first: a request arriving later goes to the end.
        return sorted(records, key=lambda r: (r.expires_at, r.id))


def is_number(wanted: str) -> bool:
    """A line of the list shown (``/approve 2``), rather than an id prefix."""
    return _NUMBER.fullmatch(wanted) is not None


def summary(record: RunRecord) -> str:
    """One line naming a waiting request: id, runbook, values, who asked where, expiry."""
    values = " ".join(f"{k}={v}" for k, v in record.values.items() if v)
    expires = time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime(record.expires_at))
    return (
        f"{record.id[:_ID_SHOWN]} {record.runbook} {values} · @{record.requester} "
        f"in #{record.channel} · expires {expires}"
    )


def _commands(listing: _Listing) -> str:
    return " or ".join(
        f"{BUTTON_COMMANDS[a]} N" for a, kind in _LISTINGS.items() if kind is listing
    )
