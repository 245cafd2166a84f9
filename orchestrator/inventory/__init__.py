"""Stock levels, their ledger, the one lock helper, availability and the CSV import."""
