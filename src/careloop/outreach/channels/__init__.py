"""Channels: one interface (`base.Channel`), one module per way of reaching a patient."""

from __future__ import annotations

from careloop.consent.models import Channel as ChannelName
from careloop.outreach.channels.base import Channel
from careloop.outreach.channels.email import SmtpEmailChannel
from careloop.outreach.channels.portal import PortalChannel
from careloop.outreach.channels.push import WebPushChannel
from careloop.outreach.channels.sms import TwilioSmsChannel
from careloop.outreach.channels.voice import TwilioVoiceChannel


def channel_for(name: str) -> Channel:
    """The configured sender for a channel name; `KeyError` for one not built yet."""
    senders: dict[str, type[Channel]] = {
        ChannelName.EMAIL: SmtpEmailChannel,
        ChannelName.SMS: TwilioSmsChannel,
        ChannelName.VOICE: TwilioVoiceChannel,
        ChannelName.PORTAL: PortalChannel,
        ChannelName.PUSH: WebPushChannel,
    }
    return senders[name]()
