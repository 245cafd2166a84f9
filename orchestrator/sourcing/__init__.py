"""Which location serves which line, and why: the pure engine, channel profiles, decisions, the simulator."""
