"""podbrief extraction service."""
