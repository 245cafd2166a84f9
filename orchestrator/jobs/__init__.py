"""The arq worker: outbox relay, pickup timers."""
