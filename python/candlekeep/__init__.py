"""Python client for the candlekeep market-data API."""

from .client import CandlekeepError, Client, ExportFailed, read_export

__all__ = ["Client", "CandlekeepError", "ExportFailed", "read_export"]
__version__ = "0.1.0"
