"""Test kit for grant webhooks: a receiver on loopback that verifies Standard Webhooks
signatures and can throttle, fail and hang."""

from .receiver import SECRET, Delivery, ThreadedReceiver, WebhookReceiver

__all__ = ["SECRET", "Delivery", "ThreadedReceiver", "WebhookReceiver"]
