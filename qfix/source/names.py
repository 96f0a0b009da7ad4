"""Qualified names for every spelling users write, without libcst's scope analysis.

`import tensorflow as tf; tf.keras.layers.Lambda`, `from tensorflow import keras`,
`import tf_keras as keras`, `from keras import layers as L`, `import
tensorflow_model_optimization as tfmot` ... all resolve to one canonical dotted name:

* every Keras flavour (Keras 3 `keras`, `tensorflow.keras`, `tf_keras`,
  `tensorflow.python.keras`, tfmot's `compat.keras`) -> `keras.<rest>` (which Keras a name
  really is, given the import order: `qfix.source.flavour`);
* `tensorflow_model_optimization` -> `tfmot`;
* `tensorflow.compat.v1/v2` -> `tensorflow`.

The alias map is built from every import statement in the file (module level and inside
functions, `try`, `if`); shadowing by later assignments is not tracked. That is a deliberate
trade: libcst's ScopeProvider costs more than parsing the file, and import aliases of
TensorFlow and Keras are almost never rebound.
"""

from __future__ import annotations

import functools

import libcst as cst

# Spellings canonicalised to `keras.`; which Keras each one really is (Keras 3 or tf_keras,
# depending on the import order) is qfix.source.flavour's business.
KERAS_PREFIXES = (
    "tensorflow_model_optimization.python.core.keras.compat.keras",
    "tensorflow.python.keras",
    "tensorflow.keras",
    "tf_keras",
    "keras",
)

_RENAMES = (
    ("tensorflow.compat.v2.", "tensorflow."),
    ("tensorflow.compat.v1.", "tensorflow."),
    ("tensorflow.dtypes.", "tensorflow."),
    ("tensorflow.lite.python.lite.", "tensorflow.lite."),  # TFLiteConverterV2's defining module
    ("tensorflow_model_optimization.python.core.quantization.keras.quantize.", "tfmot.quantization.keras."),
    ("tensorflow_model_optimization.", "tfmot."),
    ("keras.api.", "keras."),
    ("keras._tf_keras.keras.", "keras."),
    ("keras.layers.experimental.preprocessing.", "keras.layers."),
    ("keras.src.ops.", "keras.ops."),
)


def dotted(expr: cst.BaseExpression) -> str | None:
    """`a.b.c` -> "a.b.c"; None for anything that is not a plain attribute chain."""
    parts: list[str] = []
    while type(expr) is cst.Attribute:  # not isinstance: libcst's ABCs make misses slow
        parts.append(expr.attr.value)
        expr = expr.value
    if type(expr) is cst.Name:
        parts.append(expr.value)
        return ".".join(reversed(parts))
    return None


def module_name(node: cst.BaseExpression | None) -> str:
    if node is None:
        return ""
    return dotted(node) or ""  # type: ignore[arg-type]


@functools.lru_cache(maxsize=4096)  # a pure function of the string, asked for every name of every call
def canonical(qualified: str) -> str:
    """Map a fully qualified dotted name to qfix's canonical spelling."""
    q = qualified
    if q == "tensorflow_model_optimization":
        return "tfmot"
    for prefix in KERAS_PREFIXES:
        if q == prefix or q.startswith(prefix + "."):
            q = "keras" + q[len(prefix):]
            break
    changed = True
    while changed:
        changed = False
        for old, new in _RENAMES:
            if q.startswith(old):
                q = new + q[len(old):]
                changed = True
    return q


class Names:
    """Import aliases of one file and the resolution of expressions through them."""

    def __init__(self) -> None:
        self.aliases: dict[str, str] = {}
        self.imports: list[cst.Import | cst.ImportFrom] = []

    # -- building -------------------------------------------------------------------------
    def add_import(self, node: cst.Import | cst.ImportFrom) -> None:
        self.imports.append(node)
        if isinstance(node, cst.Import):
            for alias in node.names:
                full = module_name(alias.name)
                if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                    self.aliases[alias.asname.name.value] = full
                else:
                    head = full.split(".")[0]
                    self.aliases[head] = head
        else:
            if node.relative:
                base = "." * len(node.relative) + module_name(node.module)
            else:
                base = module_name(node.module)
            if isinstance(node.names, cst.ImportStar):
                return
            for alias in node.names:
                name = module_name(alias.name)
                local = name
                if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                    local = alias.asname.name.value
                self.aliases[local] = f"{base}.{name}" if base else name

    @classmethod
    def from_module(cls, module: cst.Module) -> "Names":
        names = cls()
        stack: list = list(reversed(module.body))
        while stack:
            stmt = stack.pop()
            if isinstance(stmt, cst.SimpleStatementLine):
                for small in stmt.body:
                    if isinstance(small, (cst.Import, cst.ImportFrom)):
                        names.add_import(small)
            elif isinstance(stmt, cst.SimpleStatementSuite):
                for small in stmt.body:
                    if isinstance(small, (cst.Import, cst.ImportFrom)):
                        names.add_import(small)
            elif isinstance(stmt, cst.BaseCompoundStatement):
                inner: list = []
                parts = [getattr(stmt, a, None) for a in ("body", "orelse", "finalbody")]
                parts += [h.body for h in (getattr(stmt, "handlers", ()) or ())]
                for part in parts:
                    if part is None:
                        continue
                    if isinstance(part, cst.If):
                        inner.append(part)
                        continue
                    if isinstance(part, (cst.Else, cst.Finally)):
                        part = part.body
                    if isinstance(part, cst.IndentedBlock):
                        inner.extend(part.body)
                    elif isinstance(part, cst.SimpleStatementSuite):
                        inner.append(part)
                stack.extend(reversed(inner))
        names._lite_aliases(module)
        return names

    def _lite_aliases(self, module: cst.Module) -> None:
        """`lite = tf.lite` at module level, bound once: an alias of the converter's module
        (only `tensorflow.lite`: Keras aliases such as `L = keras.layers` are flavour.py's)."""
        seen: dict[str, str | None] = {}
        for stmt in module.body:
            if not isinstance(stmt, cst.SimpleStatementLine):
                continue
            for small in stmt.body:
                if isinstance(small, cst.Assign):
                    for t in small.targets:
                        if isinstance(t.target, cst.Name):
                            q = self.qualified(small.value)
                            name = t.target.value
                            ok = q is not None and (q == "tensorflow.lite" or q.startswith("tensorflow.lite."))
                            seen[name] = q if ok and name not in seen else None
        for name, q in seen.items():
            if q is not None and name not in self.aliases:
                self.aliases[name] = q

    # -- resolving ------------------------------------------------------------------------
    def qualified(self, expr: cst.BaseExpression | None) -> str | None:
        """Fully qualified dotted name of `expr` through the import aliases, or None."""
        if expr is None:
            return None
        d = dotted(expr)
        if d is None:
            return None
        head, _, rest = d.partition(".")
        full = self.aliases.get(head)
        if full is None:
            return None
        return f"{full}.{rest}" if rest else full

    def canon(self, expr: cst.BaseExpression | None) -> str | None:
        q = self.qualified(expr)
        return canonical(q) if q is not None else None

    def is_(self, expr: cst.BaseExpression | None, *canonical_names: str) -> bool:
        c = self.canon(expr)
        return c is not None and c in canonical_names

    def local_for(self, qualified_module: str) -> str | None:
        """A spelling that reaches `qualified_module` in this file ("tensorflow" -> "tf")."""
        best = None
        for local, full in self.aliases.items():
            if full == qualified_module:
                return local
            if qualified_module.startswith(full + ".") and best is None:
                best = local + qualified_module[len(full):]
        return best

    def imports_module(self, prefix: str) -> bool:
        return any(full == prefix or full.startswith(prefix + ".") for full in self.aliases.values())


def last_name(expr: cst.BaseExpression) -> str | None:
    """`a.b.c` -> "c", `c` -> "c" (cheap pre-check before resolving a name)."""
    t = type(expr)  # not isinstance: libcst's ABCs make misses slow
    if t is cst.Attribute:
        return expr.attr.value
    if t is cst.Name:
        return expr.value
    return None
