"""Outbound: webhook subscriptions and their signed, retried, replayable deliveries."""
