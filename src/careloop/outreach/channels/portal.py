"""The secure portal: the message is posted to the patient's portal inbox.

The only channel allowed sensitive content (careloop.consent.decisions): the portal
is careloop itself, so the message never leaves our database and no vendor receives
it, which is why there is no BAA to check (`vendor_name` is empty). The patient hears
of it by a notice with no content on their preferred channel (careloop.portal.notice).
"""

from __future__ import annotations

from careloop.consent.models import Channel as ChannelName
from careloop.outreach.channels.base import Found, PermanentFailure
from careloop.outreach.models import Message
from careloop.portal.models import ThreadMessage
from careloop.portal.threads import portal_message_deliver


class PortalChannel:
    # No business associate: careloop's own portal delivers the message.
    vendor_name: str = ""

    def send(self, message: Message) -> str:
        if message.channel != ChannelName.PORTAL:
            raise PermanentFailure(f"portal cannot send a {message.channel} message")
        posted = portal_message_deliver(message=message)
        return f"portal:{posted.id}"

    def lookup(self, message: Message) -> Found | None:
        """The post, if a worker that died made it (its notice was enqueued with it)."""
        posted = ThreadMessage.objects.filter(outreach_message=message).first()
        return Found(f"portal:{posted.id}", "sent") if posted is not None else None
