"""I/O against the outside world: the Whisper engine, audio decoding, enclosure downloads, the database."""

from podbrief_transcription.adapters.download import EnclosureFetcher, make_client
from podbrief_transcription.adapters.engine import Engine, Transcriber, engine_config
from podbrief_transcription.adapters.repo import TranscriptRepo

__all__ = ["EnclosureFetcher", "Engine", "Transcriber", "TranscriptRepo", "engine_config", "make_client"]
