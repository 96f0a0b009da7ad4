"""QF501 keras3-with-tfmot: tfmot used with Keras 3 objects (model and source).

## What it does
Model side: with `--mode qat`, reports a model saved by Keras 3 (its metadata says
keras_version 3.x).

Source side: in files that use tensorflow-model-optimization (tfmot), flags every spelling
that gives Keras 3 (or TensorFlow's internal legacy Keras) objects, as the installed TF 2.21
resolves it (`qfix.source.flavour`, a table established by running each spelling): `import
keras` / `from keras import ...` (always Keras 3); `import tensorflow.keras` / `from
tensorflow.keras[.x] import ...` wherever they stand, unless `TF_USE_LEGACY_KERAS=1` is set
before TensorFlow is first imported; `tf.keras.X` (and `keras.X` after `from tensorflow import
keras`) first used before tfmot is imported; `tensorflow.python.keras`. Imports inside a `try`
that catches ImportError are compatibility probes and are not reported, nor are imports of
the data modules `datasets` and `preprocessing` (`pad_sequences`, `load_data`, image loading):
they hand out arrays, never an object that reaches tfmot.

## Why is this bad?
tfmot only works on tf_keras (Keras 2) objects. On TF >= 2.16 the module `tensorflow.keras`
is Keras 3 unless `TF_USE_LEGACY_KERAS=1` is set before TensorFlow is imported (importing
tfmot sets the variable, but only after TensorFlow), the attribute `tf.keras` is Keras 3 if
it is first used before that, and `import keras` is always Keras 3. The result is
``ValueError: `to_quantize` can only either be a keras Sequential or Functional model.``

## Example
```python
import tensorflow_model_optimization as tfmot
from tensorflow.keras import layers, models  # Keras 3, even after the tfmot import
q = tfmot.quantization.keras.quantize_model(models.Sequential([layers.Dense(2, input_shape=(3,))]))
```

## Use instead
```python
import os
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tensorflow_model_optimization as tfmot
from tf_keras import layers, models
```
For a saved Keras 3 model: `qfix model.keras --mode qat` writes the tf_keras translation
(`model.qfix.qat.keras`), or use post-training quantization (qfix's default, `--mode ptq`).

## Fix safety
Source: unsafe, the model is then built by tf_keras instead of Keras 3 (needs `pip install
tf_keras` matching the TF minor version; Keras-3-only APIs differ). The fix sets the variable
just before the first statement that imports TensorFlow (with `import os` if the file has
none by then) and imports `tf_keras` where the file imports `keras` or `tensorflow.keras`
under a name. No fix is offered when the file uses Keras-3-only APIs (`keras.ops`, ...) or
for `tensorflow.python.keras` (its internal module paths need not exist in tf_keras).

Model: the `--mode qat` job translates the model to tf_keras (`qfix.model.to_tf_keras`: the
config, the op nodes, the layer order weights are keyed by, the weights) and compares the
float outputs of the translation with the Keras 3 original's; the finding is then marked
applied. A construct with no tf_keras equivalent stays a blocker, with the reason.

## Targets
Every target: the rule reads no property of the target's profile. The model side runs only
with `--mode qat`.
"""

from __future__ import annotations

import libcst as cst

from qfix.source.flavour import KERAS3, TF_IMPORTERS, TF_INTERNAL, TF_KERAS, executed_in_order, statement_imports
from qfix.source.names import dotted
from qfix.source.rule import InsertStatements, Invalid, Replace, SourceRule, Valid, statements
from qfix.source.util import iter_nodes
from qfix.types import Applicability
from qfix.model.cases import functional_config
from qfix.rules.base import ModelCase, ModelRule

ENV_LINE = 'os.environ["TF_USE_LEGACY_KERAS"] = "1"\n'
_KERAS3_ONLY = ("keras.ops", "keras.src", "keras.random", "keras.tree", "keras.quantizers", "keras.export", "keras.distribution", "keras.config")
# submodules that hand out data (arrays, generators), never a layer, model or regularizer
_DATA_ONLY = ("datasets", "preprocessing")
_SMALLEST = (
    "import tensorflow_model_optimization as tfmot\n"
    "from tensorflow.keras import layers, models\n"
    "q = tfmot.quantization.keras.quantize_model(models.Sequential([layers.Dense(2, input_shape=(3,))]))\n"
)


def _imported(imp: cst.Import | cst.ImportFrom) -> list[str]:
    if isinstance(imp, cst.Import):
        return [dotted(a.name) or "" for a in imp.names]
    return [] if imp.relative or imp.module is None else [dotted(imp.module) or ""]


class Keras3WithTfmot(SourceRule):
    """Source side of QF501 keras3-with-tfmot; documented once, in the module docstring
    (`qfix rule QF501`)."""

    code = "QF501"
    name = "keras3-with-tfmot"
    TRIGGERS = ("tensorflow_model_optimization",)

    VALID = [
        Valid("import os\nos.environ['TF_USE_LEGACY_KERAS'] = '1'\nimport tensorflow as tf\nimport tensorflow_model_optimization as tfmot\nm = tf.keras.Sequential()\n"),
        Valid("import tensorflow as tf\nimport tensorflow_model_optimization as tfmot\nm = tf.keras.Sequential()\n"),
        Valid("import tf_keras as keras\nimport tensorflow_model_optimization as tfmot\n"),
        Valid("import keras\nm = keras.Sequential()\n"),
        Valid("import tensorflow as tf\nimport tensorflow_model_optimization as tfmot\n\ndef build():\n    return tf.keras.Sequential()\n"),
        # the lazy tf.keras is bound before tfmot but first used after it: tf_keras
        Valid("from tensorflow import keras\nimport tensorflow_model_optimization as tfmot\nm = keras.Sequential()\n"),
        # set before TensorFlow is imported, the module tensorflow.keras is tf_keras
        Valid("import os\nos.environ['TF_USE_LEGACY_KERAS'] = 'true'\nfrom tensorflow.keras import layers\nimport tensorflow_model_optimization as tfmot\n"),
        Valid("from tensorflow_model_optimization.python.core.keras.compat import keras\nm = keras.Sequential()\n"),
        # the variable set through the mapping's other spellings (issue 11 (e))
        Valid("import os\nos.environ.update(TF_USE_LEGACY_KERAS=\"1\")\nimport tensorflow_model_optimization as tfmot\nfrom tensorflow.keras import layers, models\nq = tfmot.quantization.keras.quantize_model(models.Sequential([layers.Dense(2)]))\n"),
        Valid("import os\nos.environ.update({\"TF_USE_LEGACY_KERAS\": \"1\", \"TF_CPP_MIN_LOG_LEVEL\": \"2\"})\nfrom tensorflow.keras import layers\nimport tensorflow_model_optimization as tfmot\n"),
        Valid("from os import environ\nenviron |= {\"TF_USE_LEGACY_KERAS\": \"true\"}\nimport tensorflow\nimport tensorflow.keras as K\nimport tensorflow_model_optimization as tfmot\nm = K.Sequential()\n"),
        Valid("import os\nos.environ.update([(\"TF_USE_LEGACY_KERAS\", \"1\")])\nfrom tensorflow.keras import layers\nimport tensorflow_model_optimization as tfmot\n"),
        # a compatibility probe for several Keras versions (tfmot's own prune_registry)
        Valid("import tensorflow_model_optimization as tfmot\ntry:\n    from keras.src.engine import base_layer\nexcept ImportError:\n    base_layer = None\n"),
        # data modules hand out arrays, never an object tfmot gets (tfmot's imdb examples)
        Valid(
            "import tensorflow_model_optimization as tfmot\nimport tensorflow.keras.preprocessing.sequence as sequence\n"
            "from keras.datasets import imdb\nfrom tensorflow.keras import datasets\nx = sequence.pad_sequences(imdb.load_data()[0][0])\n"
        ),
    ]
    INVALID = [
        Invalid(  # set, but to "0": still Keras 3
            "import os\nos.environ.update(TF_USE_LEGACY_KERAS=\"0\")\nimport tensorflow_model_optimization as tfmot\nfrom tensorflow.keras import layers\n",
            expected="import os\nos.environ.update(TF_USE_LEGACY_KERAS=\"0\")\nos.environ[\"TF_USE_LEGACY_KERAS\"] = \"1\"\n"
            "import tensorflow_model_optimization as tfmot\nfrom tf_keras import layers\n",
            applicability=Applicability.UNSAFE,
            message="Keras 3",
        ),
        Invalid(  # issue 11's smallest input: the import after tfmot is Keras 3 all the same
            _SMALLEST,
            expected='import os\nos.environ["TF_USE_LEGACY_KERAS"] = "1"\n' + _SMALLEST.replace("from tensorflow.keras import", "from tf_keras import"),
            applicability=Applicability.UNSAFE,
            count=1,
            message="Keras 3",
        ),
        Invalid(
            "import tensorflow_model_optimization as tfmot\nimport tensorflow.keras as K\nm = K.Sequential()\n",
            expected='import os\nos.environ["TF_USE_LEGACY_KERAS"] = "1"\nimport tensorflow_model_optimization as tfmot\nimport tf_keras as K\nm = K.Sequential()\n',
        ),
        Invalid(  # the model import is reported, the data module's beside it is not
            "import tensorflow_model_optimization as tfmot\nimport tensorflow.keras as keras\n"
            "import tensorflow.keras.preprocessing.sequence as sequence\nm = keras.Sequential()\n",
            expected='import os\nos.environ["TF_USE_LEGACY_KERAS"] = "1"\nimport tensorflow_model_optimization as tfmot\nimport tf_keras as keras\n'
            "import tensorflow.keras.preprocessing.sequence as sequence\nm = keras.Sequential()\n",
            count=1,
        ),
        Invalid(
            "import tensorflow_model_optimization as tfmot\nfrom tensorflow.keras.layers import Dense\n",
            expected='import os\nos.environ["TF_USE_LEGACY_KERAS"] = "1"\nimport tensorflow_model_optimization as tfmot\nfrom tf_keras.layers import Dense\n',
        ),
        Invalid(
            "import keras\nimport tensorflow_model_optimization as tfmot\n",
            expected='import os\nos.environ["TF_USE_LEGACY_KERAS"] = "1"\nimport tf_keras as keras\nimport tensorflow_model_optimization as tfmot\n',
            applicability=Applicability.UNSAFE,
        ),
        Invalid(  # `import os` already there: the variable is set after it, before TensorFlow
            '"""Train."""\nimport os\nimport numpy as np\nfrom tensorflow import keras\nfrom tensorflow.keras import layers\nimport tensorflow_model_optimization as tfmot\n',
            expected='"""Train."""\nimport os\nimport numpy as np\nos.environ["TF_USE_LEGACY_KERAS"] = "1"\nfrom tensorflow import keras\nfrom tf_keras import layers\nimport tensorflow_model_optimization as tfmot\n',
            count=1,
        ),
        Invalid(
            "import tensorflow as tf\nbase = tf.keras.applications.MobileNetV2()\nimport tensorflow_model_optimization as tfmot\n",
            expected='import os\nos.environ["TF_USE_LEGACY_KERAS"] = "1"\nimport tensorflow as tf\nbase = tf.keras.applications.MobileNetV2()\nimport tensorflow_model_optimization as tfmot\n',
            message="before tfmot",
        ),
        Invalid(
            "from tensorflow import keras\nL = keras.layers\nimport tensorflow_model_optimization as tfmot\n",
            expected='import os\nos.environ["TF_USE_LEGACY_KERAS"] = "1"\nfrom tensorflow import keras\nL = keras.layers\nimport tensorflow_model_optimization as tfmot\n',
        ),
        Invalid(  # set after TensorFlow is imported: too late for the module route
            "import tensorflow as tf\nimport os\nos.environ['TF_USE_LEGACY_KERAS'] = '1'\nfrom tensorflow.keras import layers\nimport tensorflow_model_optimization as tfmot\n",
            expected="import tensorflow as tf\nimport os\nos.environ['TF_USE_LEGACY_KERAS'] = '1'\nfrom tf_keras import layers\nimport tensorflow_model_optimization as tfmot\n",
        ),
        Invalid(
            "import tensorflow_model_optimization as tfmot\nfrom tensorflow.python.keras import layers\n",
            applicability=Applicability.DISPLAY_ONLY,
            message="internal",
        ),
        Invalid(
            "import keras\nimport tensorflow_model_optimization as tfmot\ny = keras.ops.relu(x)\n",
            applicability=Applicability.DISPLAY_ONLY,
        ),
    ]

    def finish(self) -> None:
        ff = self.ctx.flavours
        if not ff.uses_tfmot:
            return
        keras3_only = "keras." in self.ctx.code and any(
            (q := self.names.canon(n)) is not None and q.startswith(_KERAS3_ONLY) and (self.names.qualified(n) or "").startswith("keras")
            for n in iter_nodes(self.ctx.module) if isinstance(n, cst.Attribute)
        )
        # a file that sets the variable too late gets tf_keras imports, not a second setting
        env_edits = [] if ff.sets_env else self._env_edits()

        def report(node: cst.CSTNode, msg: str, edits: list) -> None:
            if keras3_only:
                self.report(node, msg, fix="Build the model with tf_keras (Keras-3-only APIs are used here)", applicability=Applicability.DISPLAY_ONLY)
            elif not edits:
                self.report(node, msg, fix="Import the model's classes from tf_keras", applicability=Applicability.DISPLAY_ONLY)
            else:
                self.report(node, msg, fix="Use tf_keras: set TF_USE_LEGACY_KERAS=1 before TensorFlow is imported", applicability=Applicability.UNSAFE, edits=edits)

        probes = _import_probes(self.ctx.module)
        for imp in ff.imports:
            if imp.flavour == TF_KERAS or id(imp.node) in probes or _data_only(imp.node, imp.route):
                continue
            node = imp.node
            if imp.flavour == TF_INTERNAL:
                report(node, f"`{imp.module}` is TensorFlow's internal legacy Keras; tfmot needs tf_keras models", [])
                continue
            edits: list = list(env_edits)
            if imp.route == "keras":
                why = "is always Keras 3 (TF_USE_LEGACY_KERAS does not change it)"
                edits = self._to_tf_keras(node, "keras", edits)
            else:
                why = "is Keras 3: the module is fixed when TensorFlow is first imported, and TF_USE_LEGACY_KERAS=1 is not set before that (importing tfmot sets it too late)"
                edits = self._to_tf_keras(node, "tensorflow.keras", edits)
            if edits is None:
                report(node, f"`import {imp.module}` {why}; tfmot needs tf_keras models", [])
                continue
            spelled = f"from {imp.module} import ..." if isinstance(node, cst.ImportFrom) else f"import {imp.module}"
            report(node, f"`{spelled}` {why}; tfmot needs tf_keras models", edits)
        use = ff.lazy_use
        if use is not None and use.flavour == KERAS3:
            report(use.node, "`tf.keras` is first used here, before tfmot is imported (and without TF_USE_LEGACY_KERAS=1): it is Keras 3 for the rest of the run", env_edits)

    def _to_tf_keras(self, node: cst.CSTNode, prefix: str, edits: list) -> list | None:
        """Edits importing tf_keras instead of `prefix` at `node` (plus `edits`); None when no
        replacement is right (`import keras.layers` binds `keras`, which the file may use for
        other things)."""
        if isinstance(node, cst.ImportFrom):
            mod = dotted(node.module) or ""  # type: ignore[arg-type]
            return [Replace(node.module, cst.parse_expression("tf_keras" + mod[len(prefix):])), *edits]  # type: ignore[arg-type]
        assert isinstance(node, cst.ImportAlias)
        name = dotted(node.name) or ""
        if name == prefix and (node.asname is not None or prefix == "keras"):
            asname = node.asname or cst.AsName(name=cst.Name("keras"))
            return [Replace(node, cst.ImportAlias(name=cst.Name("tf_keras"), asname=asname)), *edits]
        if prefix == "tensorflow.keras" and edits:
            return edits  # `import tensorflow.keras[.x]`: with the variable set first it is tf_keras
        return None

    def _env_edits(self) -> list:
        """Set TF_USE_LEGACY_KERAS=1 just before the first statement that imports TensorFlow
        (`import os` too, unless the file has imported it by then)."""
        body = list(self.ctx.module.body)
        anchor = None
        has_os = False
        for stmt in executed_in_order(body):
            mods = [m for imp in statement_imports(stmt) for m in _imported(imp)]
            if any(m.split(".")[0] in TF_IMPORTERS for m in mods):
                anchor = stmt
                break
            if any(isinstance(imp, cst.Import) and any((dotted(a.name) == "os" and a.asname is None) for a in imp.names) for imp in statement_imports(stmt)):
                has_os = True
        if anchor is None:  # TensorFlow only imported in functions: set it first thing
            first = next((s for s in body if not _docstring_or_future(s)), None)
            if first is None:
                return []
            anchor, has_os = first, False
        lines = ENV_LINE if has_os else "import os\n" + ENV_LINE
        return [InsertStatements(anchor, statements(lines), before=True)]


def _data_only(node: cst.CSTNode, route: str) -> bool:
    """The import binds only Keras' data modules (`import tensorflow.keras.preprocessing.sequence
    as sequence`, `from keras.datasets import mnist`, `from tensorflow.keras import datasets`)."""
    prefix = {"keras": "keras", "module": "tensorflow.keras"}.get(route)
    if prefix is None:
        return False
    if isinstance(node, cst.ImportFrom):
        rest = (dotted(node.module) or "")[len(prefix):].lstrip(".")  # type: ignore[arg-type]
        if rest:
            return rest.split(".")[0] in _DATA_ONLY
        return not isinstance(node.names, cst.ImportStar) and all(dotted(a.name) in _DATA_ONLY for a in node.names)
    if isinstance(node, cst.ImportAlias):
        rest = (dotted(node.name) or "")[len(prefix):].lstrip(".")
        return bool(rest) and rest.split(".")[0] in _DATA_ONLY
    return False


_IMPORT_ERRORS = ("ImportError", "ModuleNotFoundError", "Exception")


def _import_probes(module: cst.Module) -> set[int]:
    """Ids of the imports inside a `try` that catches ImportError (and its handlers): a
    compatibility probe for several Keras versions, as in tfmot's own registries."""
    out: set[int] = set()
    for t in iter_nodes(module):
        if not isinstance(t, cst.Try):
            continue
        if not any(h.type is None or any(dotted(n) in _IMPORT_ERRORS for n in iter_nodes(h.type) if isinstance(n, cst.Name)) for h in t.handlers):
            continue
        out.update(id(n) for n in iter_nodes(t) if isinstance(n, (cst.ImportFrom, cst.ImportAlias)))
    return out


def _docstring_or_future(stmt: cst.CSTNode) -> bool:
    if not isinstance(stmt, cst.SimpleStatementLine) or len(stmt.body) != 1:
        return False
    small = stmt.body[0]
    if isinstance(small, cst.Expr) and isinstance(small.value, (cst.SimpleString, cst.ConcatenatedString)):
        return True
    return isinstance(small, cst.ImportFrom) and small.module is not None and dotted(small.module) == "__future__"


# --- model side ----------------------------------------------------------------------------


class Keras3WithTfmotModel(ModelRule):
    """Model side of QF501 keras3-with-tfmot; documented once, in the module docstring
    (`qfix rule QF501`)."""

    code = "QF501"
    name = "keras3-with-tfmot"
    fix_applicability = Applicability.DISPLAY_ONLY

    def check(self, graph, ctx):
        if ctx.mode == "qat" and graph.dialect == "keras3":
            yield self.violation(
                f"model {graph.name!r} was saved by Keras 3, but tfmot quantization-aware training needs "
                "a tf_keras (Keras 2) model",
                None,
                fix="`qfix MODEL --mode qat` translates it to tf_keras (config, weights; float outputs compared)",
            )

    CASES = [
        ModelCase(
            "keras3-qat",
            functional_config([("x", (1, 4), "float32")], [("d", "Dense", {"units": 2}, ["x"])], ["d"]),
            fires=True,
            mode="qat",
            count=1,
        ),
        ModelCase(
            "keras3-ptq",
            functional_config([("x", (1, 4), "float32")], [("d", "Dense", {"units": 2}, ["x"])], ["d"]),
            fires=False,
        ),
    ]
