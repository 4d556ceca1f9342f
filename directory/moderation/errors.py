"""What moderation refuses, and why: the views show the message, or answer 404 for NotFound."""

from __future__ import annotations


class ModerationError(Exception):
    """A decision that can't be carried out; the message is shown to the moderator."""


class AlreadyHandled(ModerationError):
    """Someone else got there first (a second click, two moderators at once)."""


class NotFound(LookupError):
    """No row with that id: the page asked about doesn't exist (a 404, not a refusal)."""
