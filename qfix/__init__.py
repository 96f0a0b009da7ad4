"""qfix: find, fix and verify what stops a Keras model from quantizing for its target."""

__version__ = "0.1.0"
# Where the project is published (pyproject's [project.urls] says the same); its rule pages are
# `rules/<CODE>.md` there (`qfix.rules.docs.doc_url`).
HOME = "https://github.com/qfix-dev/qfix"
