"""Square (third-party POS): orders in through signed webhooks (``receiver.py``), fetched from the
Orders API (``orders_api.py``), translated by ``mapping.py``."""
