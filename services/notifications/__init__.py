"""Notifications: domain events become in-app, email and SMS messages, per user preferences.

`Notifier.handle` is the consumer handler (registered as `notifications` in
`workers/consumers.py`); the inbox and preference functions serve the API.
"""

from services.notifications.dispatch import EmailLinks, Notifier
from services.notifications.email import Recipient, SmtpMailer, build_message, render
from services.notifications.handlers import intents_for
from services.notifications.inbox import list_notifications, mark_all_read, mark_read, unread_count
from services.notifications.intents import Intent
from services.notifications.preferences import LOCKED, SecurityNoticesLocked, get_preferences, put_preferences
from services.notifications.sms import HttpSmsProvider, SmsProvider

__all__ = [
    "LOCKED",
    "EmailLinks",
    "HttpSmsProvider",
    "Intent",
    "Notifier",
    "Recipient",
    "SecurityNoticesLocked",
    "SmsProvider",
    "SmtpMailer",
    "build_message",
    "get_preferences",
    "intents_for",
    "list_notifications",
    "mark_all_read",
    "mark_read",
    "put_preferences",
    "render",
    "unread_count",
]
