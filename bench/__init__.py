"""Load and latency benchmark of the real bot against the fake Slack and Inference servers.

Run it with ``scripts/bench`` (or ``python -m bench`` from the repository root); the figures are
printed and written to ``bench/RESULTS.md``.
"""
