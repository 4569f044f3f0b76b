from podbrief_testing.llm import llama_server, tiny_llama_server  # noqa: F401  (session fixtures, slow tests)
