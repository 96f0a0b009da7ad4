"""Report renderers: text (rich) and JSON (stable keys documented in README.md)."""
