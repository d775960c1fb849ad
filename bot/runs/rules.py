"""Who may ask for a run, decide it, or cancel it. Each rule raises ``RequestRefused`` with
the words the person sees; none of them looks at which button was clicked, only at the
stored request and who clicked.

Approver membership (user ids and user groups) needs Slack, so callers look it up
(``Approvers.includes``) and pass the answer in: the rules themselves do no I/O.
"""

from __future__ import annotations

from bot.errors import RequestRefused
from bot.runbooks import Policy, Runbook
from bot.runs.record import Requester, RunRecord
from bot.runs.states import Decision, RunState


def check_request(policy: Policy, runbook: Runbook, who: Requester) -> None:
    """May ``who`` ask for ``runbook`` where they are?"""
    if runbook.approval and who.channel.startswith("D"):
        raise RequestRefused(
            "Approvers can't see a card in a direct message: ask for this runbook in a "
            "channel they're in."
        )
    if policy.requesters and who.user not in policy.requesters:
        raise RequestRefused("You're not on the list of people who may use `/run` here.")
    if policy.channels and who.channel not in policy.channels:
        allowed = ", ".join(f"<#{c}>" for c in policy.channels)
        raise RequestRefused(f"`/run` works only in {allowed}.")


def check_decision(record: RunRecord, user: str, decision: Decision, *, approver: bool) -> None:
    """May ``user`` make ``decision`` on ``record``? ``approver``: is ``user`` one of its
    approvers (only consulted for approvers' decisions)."""
    if decision is Decision.RUN and record.needs_approval:
        raise RequestRefused("This request needs an approver's click.")
    if decision.by_approver and not record.needs_approval:
        raise RequestRefused("This request needs no approval: its requester starts it with Run.")
    if not decision.by_approver:
        if user != record.requester:
            raise RequestRefused("Only the person who asked for this run can do that.")
        return
    if user == record.requester and not record.allow_self_approval:
        raise RequestRefused("You can't approve or deny your own request; another approver has to.")
    if not approver:
        raise RequestRefused(
            "You're not an approver for this runbook, so this click changed nothing."
        )


def check_cancel(record: RunRecord | None, user: str, *, approver: bool) -> RunRecord:
    """May ``user`` cancel ``record``? Returns it, known to be running."""
    if record is None or record.state is not RunState.RUNNING:
        raise RequestRefused("That run isn't running any more.")
    if user != record.requester and not approver:
        raise RequestRefused("Only the requester or an approver can cancel this run.")
    return record


def may_decide(record: RunRecord, user: str, *, approver: bool) -> bool:
    """Would an approver's click by ``user`` count (App Home's "waiting for you")?"""
    try:
        check_decision(record, user, Decision.APPROVE, approver=approver)
    except RequestRefused:
        return False
    return True
