"""The HTTP shell every controller sits in: strict bodies and query strings, the outer boundary,
injected dependencies, documentation pages, health and metrics.
"""
