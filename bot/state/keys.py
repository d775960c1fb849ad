"""Every Redis key the bot writes, and how long each lives.

Heroku Key-Value Store defaults to ``noeviction``: every key here has a TTL or a bound, so
a busy workspace can never fill the instance.
"""

from __future__ import annotations

PREFIX = "copilot:"

# A delivery is remembered for longer than Slack's retry window (3 retries within minutes).
DEDUPE_TTL = 3600
# Queued questions wait at most this long for their thread's turn.
QUEUE_TTL = 3600


def thread_id(team: str, channel: str, thread_ts: str) -> str:
    return f"{team}:{channel}:{thread_ts}"


def seen_event(event_id: str) -> str:
    return f"{PREFIX}seen:event:{event_id}"


def seen_message(channel: str, ts: str) -> str:
    return f"{PREFIX}seen:msg:{channel}:{ts}"


def history(thread: str) -> str:
    return f"{PREFIX}thread:{thread}:history"


def active(thread: str) -> str:
    """Present while the bot takes part in the thread: follow-ups need no @mention."""
    return f"{PREFIX}thread:{thread}:active"


def queue(thread: str) -> str:
    return f"{PREFIX}thread:{thread}:queue"


def lock(thread: str) -> str:
    return f"{PREFIX}thread:{thread}:lock"


# Threads with questions waiting for a worker, and approved runs waiting for one: a stream
# read by the ``answerers`` consumer group. Entries are deleted once taken; the bound only
# matters when no worker runs at all.
WORK_QUEUE_MAXLEN = 10_000


def work_queue() -> str:
    return f"{PREFIX}work-queue"


def waiting_threads() -> str:
    """Sorted set of threads with queued questions, scored by the latest one's arrival: the
    safety net that finds a queue nobody is answering. A thread leaves it when its
    answerer lets go of an empty queue; the sweep drops the rest. Each accept also drops
    entries older than ``QUEUE_TTL`` (their queue has expired), keeps the newest
    ``WAITING_THREADS_MAX``, and gives the set the queues' TTL."""
    return f"{PREFIX}threads:waiting"


WAITING_THREADS_MAX = 10_000


# A run request (its card, the exact Agents API body, and its state) outlives its decision
# long enough to show outcomes in App Home and to answer late clicks plainly.
REQUEST_TTL = 7 * 24 * 3600
AUDIT_MAXLEN = 10_000


def request(request_id: str) -> str:
    return f"{PREFIX}request:{request_id}"


def pending_requests() -> str:
    """Sorted set of pending request ids scored by expiry time, for the expiry sweeper.
    Every entry is due within ``REQUEST_TTL`` (the longest approval TTL), so the set is given
    that TTL at each new request."""
    return f"{PREFIX}requests:pending"


def approved_runs() -> str:
    """Sorted set of approved requests no process has started yet, scored by when they were
    approved or handed over: the safety net that finds a run whose hand-over to a worker
    was lost. A request leaves it with its next move (to running, or failed); the sweep
    drops ids whose request is gone. Given ``REQUEST_TTL`` at each add."""
    return f"{PREFIX}runs:approved"


def recent_requests() -> str:
    """Sorted set of request ids scored by creation time, newest kept, for App Home."""
    return f"{PREFIX}requests:recent"


RECENT_REQUESTS_MAX = 200


def audit_log() -> str:
    return f"{PREFIX}audit"


# Refused clicks and limit refusals go to a stream of their own, so a flood of them can
# never push decisions and runs out of ``audit_log``.
REFUSED_MAXLEN = 2_000


def refused_log() -> str:
    return f"{PREFIX}audit:refused"


def usergroup_members(group: str) -> str:
    return f"{PREFIX}usergroup:{group}"


USERGROUP_TTL = 300

# Who someone is (users.info) and who can read a channel (conversations.info and .members),
# cached briefly: a guest made a full member, or someone removed from a private channel,
# counts within these many seconds. Channels are re-read sooner, since hiding runs from
# someone who just left is what the check is for.
PERSON_TTL = 300
CHANNEL_TTL = 60


def person(user: str) -> str:
    return f"{PREFIX}person:{user}"


def channel(channel_id: str) -> str:
    return f"{PREFIX}channel:{channel_id}"


def channel_members(channel_id: str) -> str:
    return f"{PREFIX}channel:{channel_id}:members"


# A human thread the bot was @mentioned into (conversations.replies, masked), or the error
# that kept it from being read: a burst of mentions in one thread costs one Slack call, and
# conversations.replies is scarce (Tier 3, much less for apps outside the Marketplace).
THREAD_READ_TTL = 60
# "I couldn't read this thread" is said once per thread, for as long as a quiet thread is
# remembered by default.
CONTEXT_NOTE_TTL = 7 * 24 * 3600


def thread_read(channel_id: str, thread_ts: str) -> str:
    return f"{PREFIX}thread-read:{channel_id}:{thread_ts}"


def told_no_context(thread: str) -> str:
    return f"{PREFIX}thread:{thread}:told-no-context"


# An outsider is told once per channel per hour that the bot will not act for them; when
# their account could not be checked, they may try again after a minute.
REFUSAL_TTL = 3600
UNCONFIRMED_TTL = 60


def refused(user: str, channel_id: str) -> str:
    return f"{PREFIX}refused:{user}:{channel_id}"


def slack_budget(team: str, method: str, scope: str = "") -> str:
    """The shared GCRA state of one Slack method in one workspace (and channel, for posts)."""
    suffix = f":{scope}" if scope else ""
    return f"{PREFIX}budget:{team}:{method}{suffix}"


# A process proves it is alive by refreshing its heartbeat; work it registered outlives
# it so the next process can tell people what was interrupted.
WORK_TTL = 24 * 3600
RETRY_TTL = 24 * 3600


def heartbeat(process: str) -> str:
    return f"{PREFIX}proc:{process}"


def ping(process: str) -> str:
    """List a process's heartbeat thread waits on between beats: a push makes it beat at
    once, so a replacement can ask whether the process it replaces still lives."""
    return f"{PREFIX}proc:{process}:ping"


# A ping is answered in milliseconds or never; the list outlives an unanswered one briefly.
PING_TTL = 60


def incarnation(name: str) -> str:
    """The process running now under a stable name (Heroku's ``DYNO``, e.g. ``web.1``, or
    ``web.1/worker-0``): a replacement reads who it replaces here. Lives as long as work."""
    return f"{PREFIX}dyno:{name}"


def work(process: str) -> str:
    """Hash of what one process is doing right now (answers, runs)."""
    return f"{PREFIX}work:{process}"


def work_pattern() -> str:
    return f"{PREFIX}work:*"


def retry(retry_id: str) -> str:
    return f"{PREFIX}retry:{retry_id}"


# Limits of the runbooks file's [policy], counted here so they hold across every process.
# Each is a sorted set that only ever holds as many members as its limit allows, and lives
# no longer than its window.
RUN_STARTS_WINDOW = 3600
REQUESTS_WINDOW = 3600
QUESTIONS_WINDOW = 60
# A thread's queue of waiting questions holds at most this many.
THREAD_QUEUE_MAX = 20


def run_starts(user: str) -> str:
    """The requester's run starts in the last hour, scored by start time (ms)."""
    return f"{PREFIX}limits:run-starts:{user}"


def requests_asked(user: str) -> str:
    """The requester's requests that waited for a click in the last hour, scored by when
    they were made (ms)."""
    return f"{PREFIX}limits:requests:{user}"


def runs_in_flight() -> str:
    """The agent runs executing now in the whole app, scored by the end of their lease
    (ms): a run whose process died leaves the count when its lease ends."""
    return f"{PREFIX}limits:runs-in-flight"


def questions_asked(user: str) -> str:
    """The asker's questions queued in the last minute, scored by arrival (ms)."""
    return f"{PREFIX}limits:questions:{user}"


def told_too_many_questions(user: str) -> str:
    """Present for a minute once the asker was told of the per-minute limit."""
    return f"{PREFIX}limits:questions-told:{user}"


def told_queue_full(thread: str) -> str:
    """Present for a minute once the thread was told its queue is full."""
    return f"{PREFIX}thread:{thread}:queue-full-told"


def greeted(user: str, day: str) -> str:
    """Present from the Messages-tab greeting until the end of that (UTC) day."""
    return f"{PREFIX}greeted:{day}:{user}"


# Feedback on answers: the latest vote of each person on each answer (a change of mind
# replaces it), and per-day counts for App Home's last 7 days. Both outlive that window by a
# day, so a vote changed on day 7 still finds the count it was added to.
FEEDBACK_TTL = 8 * 24 * 3600
FEEDBACK_DAYS = 7


def feedback_vote(answer: str, user: str) -> str:
    """``"<up|down>|<count key it was added to>"``: so a changed vote leaves that count."""
    return f"{PREFIX}feedback:vote:{answer}:{user}"


def feedback_count(day: str, vote: str) -> str:
    """Votes ``vote`` (up/down) given on UTC ``day`` (YYYYMMDD) and still standing."""
    return f"{PREFIX}feedback:count:{day}:{vote}"


# Slack's agent sessions: a workspace whose app is not an agent refuses every session call;
# that is remembered for an hour, so an app fixed in its settings starts using them again.
SESSIONS_REFUSED_TTL = 3600


def sessions_refused(team: str) -> str:
    """Present while ``team`` refuses agent sessions; holds the error Slack gave."""
    return f"{PREFIX}sessions:refused:{team}"


# A stop button click waits this long for the answer streaming in its thread to see it;
# the answering process looks every fraction of a second, so this only bounds a stale mark.
STOP_TTL = 60


def stop(thread: str) -> str:
    """Who pressed the thread's stop button, and when: ``{"user": …, "at": …}``."""
    return f"{PREFIX}thread:{thread}:stop"
