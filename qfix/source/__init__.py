"""The Python-source front end (libcst): batched rule visits, fixes until stable, a parallel
runner over trees. Never imports TensorFlow."""

from qfix.source.engine import FixResult, LintResult, fix_source, lint_source

__all__ = ["FixResult", "LintResult", "fix_source", "lint_source"]
