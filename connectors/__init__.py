"""Channel adapters (web/app, marketplaces, POS): a channel's own order payload in, a canonical
``PlaceOrder`` command out. Pure translations, no I/O; each channel gets a subpackage."""
