"""Who may ask for a run, decide it, or cancel it. Each rule raises ``RequestRefused`` with
the words the person sees; none of them looks at which button was clicked, only at the
stored request and who clicked.

Approver membership (user ids and user groups) needs Slack, so callers look it up
(``Approvers.includes``) and pass the answer in: the rules themselves do no I/O.

A stored request is judged by the runbooks file in force when it is clicked, not the one
it was made under (``in_force``, ``outdated``). Who may click follows the current file: a
person no longer an approver is refused and the request keeps waiting for someone who is.
What would run follows it too: a runbook gone, a value or parameter no longer allowed, a
runbook that now needs approval, a requester or channel no longer allowed, or a different
Agents API body makes the request outdated, since no click can make it run as stored.
"""

from __future__ import annotations

from dataclasses import replace

from bot.errors import RequestRefused
from bot.runbooks import Catalog, Policy, Runbook, agent_body
from bot.runs.invocation import validate
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


def in_force(record: RunRecord, catalog: Catalog) -> RunRecord:
    """``record`` with who may decide it taken from the file in force: its runbook's
    approvers, or the policy's for a runbook no longer there (their click outdates it)."""
    known = record.runbook in catalog.runbooks
    approvers = catalog.approvers_for(record.runbook) if known else catalog.policy.approvers
    return replace(
        record, approvers=approvers, allow_self_approval=catalog.policy.allow_self_approval
    )


def outdated(record: RunRecord, catalog: Catalog, model: str) -> str | None:
    """Why the file in force (and ``model``) would not run ``record`` as stored, or None."""
    runbook = catalog.runbooks.get(record.runbook)
    if runbook is None:
        return _file_changed(f"the runbook `{record.runbook}` is no longer in it")
    change = _policy_change(record, catalog.policy, runbook) or _values_change(record, runbook)
    if change:
        return _file_changed(change)
    given = {key: value for key, value in record.values.items() if value}
    body = agent_body(runbook, validate(record.runbook, runbook, given), model)
    if body == record.body:
        return None
    if body["model"] != record.body.get("model"):
        return f"the model changed since this request (INFERENCE_MODEL_ID is now {model})"
    if body["tools"] != record.body.get("tools"):
        return _file_changed("the runbook's tools are different now")
    return _file_changed("the runbook's prompt is different now")


def _policy_change(record: RunRecord, policy: Policy, runbook: Runbook) -> str | None:
    if runbook.approval and not record.needs_approval:
        return f"`{record.runbook}` now needs an approver's click"
    if policy.requesters and record.requester not in policy.requesters:
        return f"<@{record.requester}> is no longer on the list of people who may use `/run`"
    if policy.channels and record.channel not in policy.channels:
        return f"`/run` no longer works in <#{record.channel}>"
    return None


def _values_change(record: RunRecord, runbook: Runbook) -> str | None:
    for key, value in record.values.items():
        param = runbook.params.get(key)
        if param is None:
            return f"the runbook has no parameter `{key}` any more"
        if value and param.problem(value):
            return f"the value {key}={value} is no longer allowed"
    for key in runbook.required:
        if not record.values.get(key):
            return f"the runbook now needs `{key}`"
    return None


def _file_changed(detail: str) -> str:
    return f"the runbooks file changed since this request ({detail})"
