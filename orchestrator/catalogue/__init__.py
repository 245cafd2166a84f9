"""Locations and products: the records every other capability refers to."""
