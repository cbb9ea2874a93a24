"""Python client for the candlekeep market-data API."""

__version__ = "0.1.0"
