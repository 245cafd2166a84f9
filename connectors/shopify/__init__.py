"""Shopify: orders in through signed webhooks (``receiver.py``), translated by ``mapping.py``."""
