"""Tables, the engine and the unit of work, and hand-written queries for the hot paths."""
