"""podbrief's shared core: event contracts, the bus, settings, metrics, logging, errors and storage."""

__version__ = "0.1.0"

__all__ = ["__version__"]
