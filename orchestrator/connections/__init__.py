"""Channel connectors: the registry of configured platforms and the receipts of what they sent."""
