"""qfix: find, fix and verify what stops a Keras model from quantizing for its target."""

__version__ = "0.1.0"
