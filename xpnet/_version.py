"""The release of xpnet."""

__version__ = "0.2.0"
