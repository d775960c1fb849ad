"""Slack in: turning events, slash commands and button clicks into service calls.

- ``intake``: message events on the fast path (signature, dedupe, queue, then 200)
- ``messages``: Bolt's message listeners (Socket Mode) and the Retry button
- ``runs``: ``/run`` and the run card's buttons, as ``Decision``s
- ``home``: the App Home tab
- ``feedback``: the feedback buttons under answers
"""
