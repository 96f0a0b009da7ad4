"""The language server, `qfix lsp`: qfix's source findings and fixes where the code is written,
and the static findings of the workspace's `.keras` models (`server.py` has the overview)."""
