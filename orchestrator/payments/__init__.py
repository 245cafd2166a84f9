"""Payments: money held at order, moved when the goods move (issue 9)."""
