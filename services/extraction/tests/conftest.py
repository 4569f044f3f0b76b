from podbrief_extraction.testing import llama_server  # noqa: F401  (session fixture for the slow tests)
