"""Act: the run domain and its services.

- ``states``: ``RunState``, the one table of allowed moves, ``Decision``, move results
- ``record``: ``RunRecord`` (a request and its story), ``Requester``, ``Overview``
- ``rules``: who may ask, decide and cancel (raise ``RequestRefused``)
- ``invocation``: reading ``/run`` text and model proposals against the runbooks
- ``approvers``: approver membership, by user id or user group
- ``requests``: typed records over the Redis store, moves checked against the table
- ``board``: where cards are shown (implemented in ``bot.render``)
- ``limits``: run starts per requester per hour and runs in flight, reserved before a start
- ``service``: requesting, deciding, expiring, cancelling, App Home's overview
- ``execution``: running an approved request on the Agents API and showing its progress
"""

from bot.runs.record import Overview, Requester, RunRecord
from bot.runs.states import Decision, MoveResult, RunState

__all__ = ["Decision", "MoveResult", "Overview", "Requester", "RunRecord", "RunState"]
