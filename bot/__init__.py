"""Ops copilot for Slack on Heroku."""
