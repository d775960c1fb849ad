"""The Messages tab greeting: once a day, what the copilot can do, and suggested prompts.

With the agent messaging experience Slack sends ``app_home_opened`` (tab ``messages``) when
someone opens the bot's DM, instead of ``assistant_thread_started``. The first open of the
day gets a short message in the DM and up to four suggested prompts built from the runbooks
(``bot.suggestions``); later opens that day get nothing. The prompts go to the DM itself
(``assistant.threads.setSuggestedPrompts`` without ``thread_ts``: Slack documents that a
``thread_ts`` makes the call silently do nothing for an agent app).
"""

from __future__ import annotations

import logging
import time

from slack_sdk.web.async_client import AsyncWebClient

from bot.access import Access
from bot.errors import BotError, SlackError
from bot.runbooks import Catalog
from bot.slack.budget import SlackBudget
from bot.slack.calls import slack_errors
from bot.state.greetings import Greetings
from bot.suggestions import from_catalog

log = logging.getLogger(__name__)

PROMPTS_TITLE = "Try asking"
POST = "chat.postMessage"
SET_PROMPTS = "assistant.threads.setSuggestedPrompts"


def greeting_text(user: str, catalog: Catalog) -> str:
    names = ", ".join(f"`{name}`" for name in catalog.runbooks)
    runbooks = (
        f"`/run` starts a runbook ({names}); the ones that change things wait for an "
        "approver's click."
        if names
        else "`/run help` lists the runbooks, once your team has configured some."
    )
    return (
        f"Hi <@{user}>! I'm the ops copilot. Ask me about your Heroku apps right here, or "
        f"@mention me in a channel thread and I'll answer there.\n{runbooks}"
    )


class Greeter:
    def __init__(
        self,
        client: AsyncWebClient,
        budget: SlackBudget,
        greetings: Greetings,
        catalog: Catalog,
        access: Access,
    ) -> None:
        self._client = client
        self._budget = budget
        self._greetings = greetings
        self._catalog = catalog
        self._access = access

    async def greet(self, user: str, channel: str, team: str = "") -> None:
        """Greet ``user`` in their DM ``channel`` unless they were greeted today."""
        now = time.time()
        if not user or not channel:
            return
        if not await self._greetings.claim(user, now):
            log.info("Messages tab: already greeted today")
            return
        try:
            await self._welcome(user, channel, team)
        except BotError:
            await self._greetings.release(user, now)
            raise

    async def _welcome(self, user: str, channel: str, team: str) -> None:
        refusal = await self._access.check(user, channel, team=team)
        if refusal is not None:
            # An outsider is told, once an hour, that the bot is not for them; no prompts.
            if refusal.text is not None:
                await self._post(channel, refusal.text)
            log.info("Messages tab: not greeting someone the bot does not serve")
            return
        await self._post(channel, greeting_text(user, self._catalog))
        await self._suggest(channel)
        log.info("Messages tab: greeted")

    async def _post(self, channel: str, text: str) -> None:
        await self._budget.take(POST, channel)
        async with slack_errors(POST):
            await self._client.chat_postMessage(channel=channel, text=text)

    async def _suggest(self, channel: str) -> None:
        prompts = [p.to_slack() for p in from_catalog(self._catalog)]
        await self._budget.take(SET_PROMPTS)
        try:
            async with slack_errors(SET_PROMPTS):
                await self._client.assistant_threads_setSuggestedPrompts(
                    channel_id=channel, prompts=prompts, title=PROMPTS_TITLE
                )
        except SlackError as exc:
            # Not an agent app (missing_scope), say: the greeting stands without prompts;
            # `python -m bot check` names the fix.
            log.warning("could not set suggested prompts: %s", exc)
