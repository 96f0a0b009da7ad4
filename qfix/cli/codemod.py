"""qfix's source fixes as a libcst codemod command, for teams that run libcst's tool:

    python -m libcst.tool codemod -x qfix.cli.codemod.ApplyQfixFixes PATHS [--target edgetpu] [--unsafe-fixes]

It applies the same fixes as `qfix PATH --write` (same engine, same fix-until-stable loop).
"""

from __future__ import annotations

import argparse

import libcst as cst
from libcst.codemod import CodemodContext, SkipFile, VisitorBasedCodemodCommand

from qfix.rules import source_rules
from qfix.source.engine import fix_source
from qfix.source.parse import parse_module


class ApplyQfixFixes(VisitorBasedCodemodCommand):
    DESCRIPTION = "Apply qfix's source fixes (quantization mistakes in Keras/TFLite code)."

    @staticmethod
    def add_args(arg_parser: argparse.ArgumentParser) -> None:
        arg_parser.add_argument("--target", dest="target", default=None, help="edgetpu, int8, tflm, ethos-u")
        arg_parser.add_argument("--unsafe-fixes", dest="unsafe_fixes", action="store_true", default=False)

    def __init__(self, context: CodemodContext, target: str | None = None, unsafe_fixes: bool = False) -> None:
        super().__init__(context)
        self.target = target
        self.unsafe_fixes = unsafe_fixes

    def transform_module_impl(self, tree: cst.Module) -> cst.Module:
        code = tree.code
        result = fix_source(code, rules=source_rules(), path=self.context.filename, target=self.target,
                            unsafe_fixes=self.unsafe_fixes)
        for v in result.remaining:
            self.warn(f"{v.location.line}:{v.location.col}: {v.code} {v.message}")
        if result.code == code:
            raise SkipFile("no qfix fixes")
        return parse_module(result.code)
