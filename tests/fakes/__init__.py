"""Fake Slack and Heroku Inference servers for tests."""

from tests.fakes.inference import FakeInference, InferenceRequest
from tests.fakes.slack_api import FakeSlack
from tests.fakes.slack_model import Message, SlackCall, UploadedFile

__all__ = ["FakeInference", "FakeSlack", "InferenceRequest", "Message", "SlackCall", "UploadedFile"]
