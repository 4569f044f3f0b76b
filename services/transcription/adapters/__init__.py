"""I/O against the outside world: the Whisper engine (`engine`), audio decoding (`audio`), enclosure downloads
(`download`), model files (`model_source`) and the database (`repo`). Import each from its own module."""
