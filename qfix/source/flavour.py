"""Which Keras a name really is: Keras 3, tf_keras, or TensorFlow's internal legacy copy.

The table and the rules below hold for the versions qfix is tested with (`VERSIONS`:
TensorFlow 2.21, Keras 3.15, tf_keras 2.21, tensorflow-model-optimization 0.8). Every row of
`RESOLUTION` is a real script: `tests/source/test_flavour.py` runs each one against the
installed packages (`-m tf`) and checks that `FileFlavours` predicts the same Keras from the
text alone, so a version that changes a row fails a test instead of misleading a rule.

How TF 2.21 routes Keras (`tensorflow/__init__.py`, `tensorflow/python/util/lazy_loader.py`):

* **module route** - `import tensorflow.keras [as k]`, `from tensorflow.keras[.x] import y`:
  the import system finds `tensorflow.keras` on `tensorflow.__path__`, which is fixed when
  TensorFlow is first imported: tf_keras if `TF_USE_LEGACY_KERAS=1` was set before that,
  Keras 3 otherwise. Importing tfmot sets the variable only after it has imported TensorFlow,
  so it never helps here. The import also rebinds the attribute `tf.keras` to that module.
* **attribute route** - `tf.keras.X`, `from tensorflow import keras` then `keras.X`,
  `tf.compat.v2.keras.X`: a lazy loader resolved at its first attribute access, reading
  `TF_USE_LEGACY_KERAS` at that moment (importing tfmot sets it and resolves `tf.keras`
  itself). Touched before the tfmot import: Keras 3 for good.
* `keras` is always Keras 3 (even with the variable set); `tf_keras` and tfmot's own
  `compat.keras` are always tf_keras; `tensorflow.python.keras` is TensorFlow's internal
  legacy copy, which is neither (tfmot's `quantize_model` refuses its models too).

TensorFlow is imported by `tensorflow`, `tensorflow_model_optimization`, `keras` (its
TensorFlow backend) and `tf_keras`, whichever comes first. The source front end never imports
any of them: this module reads the file's statements in execution order (module level, with
the bodies of `if` / `try` / `with` blocks; function bodies run after the module level).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator

import libcst as cst

from qfix.source.names import dotted
from qfix.source.util import _fields, string_value

VERSIONS = {"tensorflow": "2.21", "keras": "3.15", "tf_keras": "2.21", "tensorflow_model_optimization": "0.8"}

KERAS3 = "keras3"
TF_KERAS = "tf_keras"
TF_INTERNAL = "tf_internal"  # tensorflow.python.keras
FLAVOUR_NAMES = {KERAS3: "Keras 3", TF_KERAS: "tf_keras", TF_INTERNAL: "TensorFlow's internal legacy Keras"}

TF_IMPORTERS = ("tensorflow", "tensorflow_model_optimization", "keras", "tf_keras", "tensorflow_hub")
_TFMOT = "tensorflow_model_optimization"
_TFMOT_COMPAT = "tensorflow_model_optimization.python.core.keras.compat.keras"
_LAZY = ("tensorflow.keras", "tensorflow.compat.v1.keras", "tensorflow.compat.v2.keras")
_TRUE = ("1", "true", "True")


@dataclass(frozen=True)
class Row:
    """One established fact: in `code`, the layer bound to `layer` on the last line is `flavour`."""

    spelling: str
    context: str
    code: str
    flavour: str


_ENV = 'import os\nos.environ["TF_USE_LEGACY_KERAS"] = "1"\n'
_TFMOT_IMPORT = "import tensorflow_model_optimization as tfmot\n"

# (spelling, context, script, flavour). The contexts: "plain" (no tfmot, no variable),
# "after tfmot" (first used after the tfmot import), "before tfmot" (first used before it),
# "env first" (TF_USE_LEGACY_KERAS=1 before TensorFlow is imported), "env late" (set after
# TensorFlow is imported, before the first use).
RESOLUTION: tuple[Row, ...] = (
    Row("import keras", "after tfmot", _TFMOT_IMPORT + "import keras\nlayer = keras.layers.Dense(2)\n", KERAS3),
    Row("import keras", "env first", _ENV + "import keras\nlayer = keras.layers.Dense(2)\n", KERAS3),
    Row("import tf_keras", "plain", "import tf_keras\nlayer = tf_keras.layers.Dense(2)\n", TF_KERAS),
    Row("tfmot compat keras", "plain", "from tensorflow_model_optimization.python.core.keras.compat import keras\nlayer = keras.layers.Dense(2)\n", TF_KERAS),
    Row("tf.keras.X", "plain", "import tensorflow as tf\nlayer = tf.keras.layers.Dense(2)\n", KERAS3),
    Row("tf.keras.X", "after tfmot", "import tensorflow as tf\n" + _TFMOT_IMPORT + "layer = tf.keras.layers.Dense(2)\n", TF_KERAS),
    Row("tf.keras.X", "before tfmot", "import tensorflow as tf\nL = tf.keras.layers\n" + _TFMOT_IMPORT + "layer = tf.keras.layers.Dense(2)\n", KERAS3),
    Row("tf.keras.X", "env first", _ENV + "import tensorflow as tf\nlayer = tf.keras.layers.Dense(2)\n", TF_KERAS),
    Row("tf.keras.X", "env late", "import tensorflow as tf\n" + _ENV + "layer = tf.keras.layers.Dense(2)\n", TF_KERAS),
    Row("tf.keras.X", "after tfmot and `from tensorflow.keras import`", "import tensorflow as tf\n" + _TFMOT_IMPORT + "from tensorflow.keras import layers\nlayer = tf.keras.layers.Dense(2)\n", KERAS3),
    Row("tf.compat.v2.keras.X", "after tfmot", "import tensorflow as tf\n" + _TFMOT_IMPORT + "layer = tf.compat.v2.keras.layers.Dense(2)\n", TF_KERAS),
    Row("from tensorflow import keras", "after tfmot", "from tensorflow import keras\n" + _TFMOT_IMPORT + "layer = keras.layers.Dense(2)\n", TF_KERAS),
    Row("from tensorflow import keras", "before tfmot", "from tensorflow import keras\nL = keras.layers\n" + _TFMOT_IMPORT + "layer = keras.layers.Dense(2)\n", KERAS3),
    Row("import tensorflow.keras as K", "after tfmot", _TFMOT_IMPORT + "import tensorflow.keras as K\nlayer = K.layers.Dense(2)\n", KERAS3),
    Row("from tensorflow.keras import layers", "after tfmot", _TFMOT_IMPORT + "from tensorflow.keras import layers\nlayer = layers.Dense(2)\n", KERAS3),
    Row("from tensorflow.keras import layers", "before tfmot", "from tensorflow.keras import layers\n" + _TFMOT_IMPORT + "layer = layers.Dense(2)\n", KERAS3),
    Row("from tensorflow.keras.layers import Dense", "after tfmot", _TFMOT_IMPORT + "from tensorflow.keras.layers import Dense\nlayer = Dense(2)\n", KERAS3),
    Row("from tensorflow.keras import layers", "env first", _ENV + "from tensorflow.keras import layers\nlayer = layers.Dense(2)\n", TF_KERAS),
    Row("from tensorflow.keras import layers", "env late", "import tensorflow as tf\n" + _ENV + "from tensorflow.keras import layers\nlayer = layers.Dense(2)\n", KERAS3),
    Row("from tensorflow.keras import layers", "env after `import keras`", "import keras\n" + _ENV + "from tensorflow.keras import layers\nlayer = layers.Dense(2)\n", KERAS3),
    Row("from tensorflow.python import keras", "after tfmot", _TFMOT_IMPORT + "from tensorflow.python import keras\nlayer = keras.layers.Dense(2)\n", TF_INTERNAL),
)


def statement_imports(stmt: cst.CSTNode) -> Iterator[cst.Import | cst.ImportFrom]:
    if isinstance(stmt, cst.SimpleStatementLine):
        for small in stmt.body:
            if isinstance(small, (cst.Import, cst.ImportFrom)):
                yield small


def executed_in_order(body: Iterator[cst.CSTNode] | list) -> list[cst.CSTNode]:
    """Module-level statements in execution order, with the bodies of `if` / `try` / `with` /
    `else` / `except` blocks flattened in; function and class bodies are left out."""
    out: list[cst.CSTNode] = []
    stack = list(reversed(list(body)))
    while stack:
        stmt = stack.pop()
        if isinstance(stmt, (cst.If, cst.Try, cst.With, cst.For, cst.While)):
            inner: list = []
            for part in (stmt.body, getattr(stmt, "orelse", None), getattr(stmt, "finalbody", None), *(getattr(stmt, "handlers", ()) or ())):
                if part is None:
                    continue
                if isinstance(part, cst.If):  # elif
                    inner.append(part)
                    continue
                block = part.body if isinstance(part, (cst.Else, cst.Finally, cst.ExceptHandler)) else part
                if isinstance(block, cst.IndentedBlock):
                    inner.extend(block.body)
                elif isinstance(block, cst.SimpleStatementSuite):
                    inner.append(cst.SimpleStatementLine(body=block.body))
            stack.extend(reversed(inner))
        else:
            out.append(stmt)
    return out


_ENV_KEY = "TF_USE_LEGACY_KERAS"


def _mapping_sets_env(expr: cst.BaseExpression) -> bool:
    """`{"TF_USE_LEGACY_KERAS": "1", ...}` / `[("TF_USE_LEGACY_KERAS", "1")]` (what
    `environ.update` and `environ |=` take)."""
    if isinstance(expr, cst.Dict):
        return any(
            isinstance(e, cst.DictElement) and string_value(e.key) == _ENV_KEY and string_value(e.value) in _TRUE
            for e in expr.elements
        )
    if isinstance(expr, (cst.List, cst.Tuple)):
        return any(
            isinstance(e.value, (cst.Tuple, cst.List)) and len(e.value.elements) == 2
            and string_value(e.value.elements[0].value) == _ENV_KEY and string_value(e.value.elements[1].value) in _TRUE
            for e in expr.elements
        )
    return False


def sets_legacy_env(stmt: cst.CSTNode) -> bool:
    """`os.environ["TF_USE_LEGACY_KERAS"] = "1"` (or "true"/"True"; `setdefault`, `putenv` too),
    `os.environ.update(TF_USE_LEGACY_KERAS="1")`, `os.environ.update({...})` and
    `os.environ |= {...}`."""
    if not isinstance(stmt, cst.SimpleStatementLine):
        return False
    for small in stmt.body:
        if (
            isinstance(small, cst.AugAssign) and isinstance(small.operator, cst.BitOrAssign)
            and _is_environ(small.target) and _mapping_sets_env(small.value)
        ):
            return True
        if isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            call = small.value
            if isinstance(call.func, cst.Attribute) and call.func.attr.value == "update" and _is_environ(call.func.value):
                for a in call.args:
                    if a.keyword is not None and a.keyword.value == _ENV_KEY and string_value(a.value) in _TRUE:
                        return True
                    if a.keyword is None and not a.star and _mapping_sets_env(a.value):
                        return True
                    if a.star == "**" and _mapping_sets_env(a.value):
                        return True
        if isinstance(small, cst.Assign) and isinstance(small.value, (cst.SimpleString, cst.Integer)):
            value = string_value(small.value) if isinstance(small.value, cst.SimpleString) else small.value.value
            for t in small.targets:
                tgt = t.target
                if isinstance(tgt, cst.Subscript) and len(tgt.slice) == 1:
                    key = tgt.slice[0].slice
                    if isinstance(key, cst.Index) and string_value(key.value) == "TF_USE_LEGACY_KERAS" and value in _TRUE:
                        return True
        elif isinstance(small, cst.Expr) and isinstance(small.value, cst.Call):
            call = small.value
            if isinstance(call.func, cst.Attribute) and call.func.attr.value in ("setdefault", "putenv") and len(call.args) >= 2:
                if string_value(call.args[0].value) == "TF_USE_LEGACY_KERAS" and string_value(call.args[1].value) in _TRUE:
                    return True
    return False


def _is_environ(expr: cst.BaseExpression) -> bool:
    """`os.environ` or `environ` (`from os import environ`): by its last name, as the
    subscript form above is read."""
    return (isinstance(expr, cst.Attribute) and expr.attr.value == "environ") or (isinstance(expr, cst.Name) and expr.value == "environ")


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _is_lazy(qualified: str) -> bool:
    return any(_within(qualified, p) for p in _LAZY)


@dataclass
class KerasImport:
    """An import statement (or one alias of it) that binds a Keras, with what it binds."""

    node: cst.CSTNode  # the ImportAlias (`import x`) or the ImportFrom
    module: str  # the dotted module imported (`tensorflow.keras.layers`)
    flavour: str
    route: str  # "keras", "tf_keras", "module", "internal"


@dataclass
class LazyUse:
    """The first module-level attribute access of the lazy `tf.keras`, and what it resolved to."""

    node: cst.Attribute
    flavour: str


class FileFlavours:
    """The Keras each spelling of one file resolves to, following `RESOLUTION`'s rules.

    `of(expr)` answers for an expression (`layers.Dense`, `tf.keras.Model`);
    `imports` lists the imports binding a Keras; `lazy_use` is the first module-level access
    of the lazy `tf.keras` (None when only functions touch it).
    """

    def __init__(self, module: cst.Module) -> None:
        self.imports: list[KerasImport] = []
        self.lazy_use: LazyUse | None = None
        self.uses_tfmot = False
        self.env_before_tf = False
        self.sets_env = False  # the file sets TF_USE_LEGACY_KERAS=1 at module level
        self._bindings: dict[str, tuple[str, str]] = {}  # local name -> (qualified, flavour or "lazy")
        self._lazy: str | None = None  # what `tf.keras` is, once resolved
        tf_imported = legacy = False
        for stmt in executed_in_order(module.body):
            if sets_legacy_env(stmt):
                legacy = self.sets_env = True
                self.env_before_tf = self.env_before_tf or not tf_imported
            for imp in statement_imports(stmt):
                for full, local, node in self._bound(imp):
                    top = full.split(".")[0]
                    if top in TF_IMPORTERS:
                        tf_imported = True
                    if top == _TFMOT:
                        self.uses_tfmot = True
                        legacy = True  # tfmot's compat module sets the variable ...
                        if self._lazy is None:  # ... and then touches tf.keras
                            self._lazy = TF_KERAS
                    self._bind(full, local, node, stmt)
            if self._lazy is None:
                node = self._first_lazy_access(stmt)
                if node is not None:
                    self._lazy = TF_KERAS if legacy else KERAS3
                    self.lazy_use = LazyUse(node, self._lazy)
        self._final_legacy = legacy
        # imports inside functions run when the function is called, after the module level
        for node in _function_imports(module):
            for full, local, alias in self._bound(node):
                if full.split(".")[0] == _TFMOT:
                    self.uses_tfmot = True
                    self._final_legacy = True
                self._bind(full, local, alias, None)

    # -- building ----------------------------------------------------------------------
    @staticmethod
    def _bound(imp: cst.Import | cst.ImportFrom) -> Iterator[tuple[str, str, cst.CSTNode]]:
        """(qualified name bound, local name, node) for each alias of an import."""
        if isinstance(imp, cst.Import):
            for alias in imp.names:
                full = dotted(alias.name) or ""
                if alias.asname is not None and isinstance(alias.asname.name, cst.Name):
                    yield full, alias.asname.name.value, alias
                else:
                    yield full, "", alias  # `import a.b` binds `a`; the module a.b is imported
            return
        if imp.relative or imp.module is None:
            return
        base = dotted(imp.module) or ""
        if isinstance(imp.names, cst.ImportStar):
            yield base, "", imp
            return
        for alias in imp.names:
            name = dotted(alias.name) or ""
            local = alias.asname.name.value if alias.asname is not None and isinstance(alias.asname.name, cst.Name) else name
            yield f"{base}.{name}", local, imp

    def _bind(self, full: str, local: str, node: cst.CSTNode, stmt: cst.CSTNode | None) -> None:
        """Record what `local` (or, for `import a.b`, the head `a`) is bound to."""
        from_import = isinstance(node, cst.ImportFrom)
        module = (dotted(node.module) or "") if from_import else full  # type: ignore[attr-defined]
        top = full.split(".")[0]
        plain = not local
        if plain:
            local = top  # `import a.b.c` binds `a` (and imports the module a.b.c)
        if _within(full, _TFMOT_COMPAT):
            flavour, route = TF_KERAS, "tf_keras"
        elif _within(module, "keras"):
            flavour, route = KERAS3, "keras"
        elif _within(module, "tf_keras"):
            flavour, route = TF_KERAS, "tf_keras"
        elif _within(full, "tensorflow.python.keras") or _within(module, "tensorflow.python.keras"):
            flavour, route = TF_INTERNAL, "internal"
        elif _within(module, "tensorflow.keras"):
            flavour, route = (TF_KERAS if self.env_before_tf else KERAS3), "module"
            if stmt is not None:
                self._lazy = flavour  # the import rebinds the attribute tf.keras to the module
        elif top == "tensorflow":
            # `import tensorflow as tf`, `from tensorflow import keras` (the lazy loader itself)
            self._bindings[local] = (top if plain else full, "lazy" if from_import and _is_lazy(full) else "tensorflow")
            return
        else:
            return
        if isinstance(node, cst.ImportFrom) and isinstance(node.names, cst.ImportStar):
            pass  # binds the module's names, not the module
        elif plain and top == "tensorflow":
            self._bindings[local] = ("tensorflow", "tensorflow")
        else:
            self._bindings[local] = (top if plain else full, flavour)
        self.imports.append(KerasImport(node, module, flavour, route))

    def _first_lazy_access(self, stmt: cst.CSTNode) -> cst.Attribute | None:
        if isinstance(stmt, (cst.FunctionDef, cst.ClassDef)) or next(statement_imports(stmt), None) is not None:
            return None
        for n in _walk(stmt, prune=(cst.Lambda, cst.FunctionDef, cst.ClassDef)):  # bodies not run here
            if isinstance(n, cst.Attribute):
                q = self._qualified(n)
                if q is not None and q[1] == "lazy-access":
                    return n
        return None

    # -- resolving ---------------------------------------------------------------------
    def _qualified(self, expr: cst.BaseExpression) -> tuple[str, str] | None:
        """(qualified name, how its head is bound) for a plain attribute chain or name."""
        d = dotted(expr)
        if d is None:
            return None
        head, _, rest = d.partition(".")
        bound = self._bindings.get(head)
        if bound is None:
            return None
        full, how = bound
        q = f"{full}.{rest}" if rest else full
        if how == "lazy":
            return (q, "lazy-access") if rest else (q, "lazy")
        if how == "tensorflow":
            # `tf.keras` alone is the loader; reading an attribute of it resolves it
            return (q, "lazy-access") if any(q.startswith(p + ".") for p in _LAZY) else (q, "tensorflow")
        return q, how

    def of(self, expr: cst.BaseExpression | None) -> str | None:
        """The Keras `expr` belongs to (KERAS3, TF_KERAS, TF_INTERNAL), or None when it is
        not a Keras name. Answered with the state the module level ends in: what function
        bodies see, and module-level code after the first use of `tf.keras`."""
        if expr is None:
            return None
        q = self._qualified(expr)
        if q is None:
            return None
        name, how = q
        if how in (KERAS3, TF_KERAS, TF_INTERNAL):
            return how
        if how in ("lazy-access", "lazy"):
            if self._lazy is not None:
                return self._lazy
            return TF_KERAS if self._final_legacy else KERAS3
        return None


def _walk(root: cst.CSTNode, prune: tuple[type, ...]) -> Iterator[cst.CSTNode]:
    """Pre-order over the meaningful nodes (the engine's field walk), not entering `prune`
    nodes below the root."""
    stack: list = [root]
    CN = cst.CSTNode
    while stack:
        x = stack.pop()
        yield x
        kids: list = []
        for name in _fields(type(x)):
            v = getattr(x, name)
            if isinstance(v, CN):
                kids.append(v)
            elif type(v) is tuple or type(v) is list:
                kids.extend(c for c in v if isinstance(c, CN))
        stack.extend(k for k in reversed(kids) if not isinstance(k, prune))


def _function_imports(module: cst.Module) -> Iterator[cst.Import | cst.ImportFrom]:
    """Imports that are not executed at module level (in function and class bodies)."""
    executed = {id(s) for s in executed_in_order(module.body)}
    for n in _walk(module, prune=(cst.BaseExpression, cst.Import, cst.ImportFrom)):
        if isinstance(n, cst.SimpleStatementLine) and id(n) not in executed:
            yield from statement_imports(n)
