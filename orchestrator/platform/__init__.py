"""What every capability shares: the database and its unit of work, the outbox and the event
catalogue, idempotency, actors and API keys, problems, pagination, the clock.
"""
