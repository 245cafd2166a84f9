"""Pure business rules: no I/O, no framework. Everything here is unit-tested without a database."""
