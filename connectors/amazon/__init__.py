"""Amazon Selling Partner API (Orders API v0): the order mapping, the API client, the poller."""
