"""I/O against the outside world: the LLM endpoint and the service's database."""
