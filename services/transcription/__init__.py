"""podbrief transcription service."""
