"""The states of a run request, the one table of moves between them, and what a move returns.

::

    pending ──approve/run──▶ approved ──▶ running ──▶ succeeded | failed | cancelled
       │                                     │
       ├──deny──▶ denied                     └──▶ interrupted ──▶ succeeded | failed
       ├──withdraw──▶ withdrawn                   (its process stopped; the real outcome,
       ├──▶ expired                                if it still comes, replaces it)
       ├──▶ outdated (at a click: the runbooks file in force no longer allows it as stored)
       └──▶ failed (the card could not be posted)

The Redis store refuses any move this table does not list, in the same atomic step that
makes it: two approvers clicking at once make one move, a second approval is refused, and a
finished run never changes its outcome.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum


class RunState(StrEnum):
    PENDING = "pending"  # waits for a decision: an approver's, or the requester's Run
    APPROVED = "approved"  # decided; starts at once
    DENIED = "denied"
    WITHDRAWN = "withdrawn"
    EXPIRED = "expired"
    OUTDATED = "outdated"  # the runbooks file in force would not run it as stored
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"  # someone stopped watching it; Heroku may still finish it
    INTERRUPTED = "interrupted"  # the process watching it stopped: outcome unknown

    @property
    def waiting(self) -> bool:
        return self is RunState.PENDING

    @property
    def underway(self) -> bool:
        """Decided to run and not ended yet."""
        return self in (RunState.APPROVED, RunState.RUNNING)

    @property
    def ran(self) -> bool:
        """It started on Heroku, whatever came of it."""
        return self in _RAN


_RAN = frozenset(
    {
        RunState.RUNNING,
        RunState.SUCCEEDED,
        RunState.FAILED,
        RunState.CANCELLED,
        RunState.INTERRUPTED,
    }
)

TRANSITIONS: Mapping[RunState, frozenset[RunState]] = {
    RunState.PENDING: frozenset(
        {
            RunState.APPROVED,
            RunState.DENIED,
            RunState.WITHDRAWN,
            RunState.EXPIRED,
            RunState.OUTDATED,
            RunState.FAILED,
        }
    ),
    RunState.APPROVED: frozenset({RunState.RUNNING, RunState.FAILED}),
    RunState.RUNNING: frozenset(
        {RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED, RunState.INTERRUPTED}
    ),
    RunState.INTERRUPTED: frozenset({RunState.SUCCEEDED, RunState.FAILED}),
}

# The outcomes a run's own process can report when its stream ends.
OUTCOMES = frozenset({RunState.SUCCEEDED, RunState.FAILED, RunState.CANCELLED})


def sources(target: RunState) -> frozenset[RunState]:
    """The states from which the table allows a move to ``target``."""
    return frozenset(s for s, targets in TRANSITIONS.items() if target in targets)


class Decision(StrEnum):
    """What a person can decide about a pending request."""

    APPROVE = "approve"  # an approver lets it run
    DENY = "deny"  # an approver refuses it
    WITHDRAW = "withdraw"  # the requester takes it back
    RUN = "run"  # the requester starts a request that needs no approval

    @property
    def target(self) -> RunState:
        return _DECIDES[self]

    @property
    def by_approver(self) -> bool:
        return self in (Decision.APPROVE, Decision.DENY)


_DECIDES = {
    Decision.APPROVE: RunState.APPROVED,
    Decision.DENY: RunState.DENIED,
    Decision.WITHDRAW: RunState.WITHDRAWN,
    Decision.RUN: RunState.APPROVED,
}

# Decisions count only before the request expires; the expiry itself does not wait. A
# click on an expired request finds it expired, not outdated.
BEFORE_EXPIRY = frozenset({*(d.target for d in Decision), RunState.OUTDATED})


@dataclass(frozen=True)
class Moved:
    previous: RunState


@dataclass(frozen=True)
class WrongState:
    state: RunState


@dataclass(frozen=True)
class Expired:
    pass


@dataclass(frozen=True)
class Missing:
    pass


MoveResult = Moved | WrongState | Expired | Missing
