"""A Stripe-shaped server for tests: the endpoints the payment gateway calls, with Stripe's field
names, statuses, error bodies, idempotency-key replay and signed webhooks (see ``app.py``,
``ledger.py``, ``cards.py`` for the test payment methods, ``webhooks.py``, ``fixtures.py``)."""
