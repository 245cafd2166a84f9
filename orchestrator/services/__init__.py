"""Use cases: one function each, one transaction each, committed explicitly."""
