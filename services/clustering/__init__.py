"""podbrief clustering service."""
