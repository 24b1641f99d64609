"""The package version, in one place (the saved-Δh format and the CLI stamp it)."""
__version__ = "0.1.0"
