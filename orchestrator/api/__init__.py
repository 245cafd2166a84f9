"""The HTTP face: thin controllers that parse, authorise, call one use case and map the result."""
