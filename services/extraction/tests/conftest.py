from podbrief_testing.llm import llama_server  # noqa: F401  (session fixture for the slow tests)
