"""Limits a person meets the same way in chat, in forms and in the engine."""

MAX_JUSTIFICATION = 500  # characters; a longer justification or reason is refused
