"""The one order record every channel reads, and the flows that change it: intake, changes, queries."""
