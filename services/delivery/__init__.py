"""podbrief delivery service."""
