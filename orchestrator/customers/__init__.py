"""One customer across channels: identities and matching."""
