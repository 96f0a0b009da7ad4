"""QF501 keras3-with-tfmot: tfmot used with Keras 3 objects (model and source).

## What it does
Model side: with `--mode qat`, reports a model saved by Keras 3 (its metadata says
keras_version 3.x).

Source side: in files that use tensorflow-model-optimization (tfmot), flags Keras 3 objects:
imports of the Keras 3 package (`import keras`, `from keras import layers`), and `from
tensorflow import keras` / `from tensorflow.keras import ...` / module-level `tf.keras` use
that come before tfmot is imported, when `TF_USE_LEGACY_KERAS=1` is not set before
TensorFlow is imported.

## Why is this bad?
tfmot only works on tf_keras (Keras 2) objects. On TF >= 2.16 `tf.keras` is Keras 3 unless
`TF_USE_LEGACY_KERAS=1` is set before TensorFlow is imported (tfmot sets it, but too late if
`tf.keras` was already touched), and `import keras` is always Keras 3. The result is
``ValueError: `to_quantize` can only either be a keras Sequential or Functional model.``

## Example
```python
import keras
import tensorflow_model_optimization as tfmot
q = tfmot.quantization.keras.quantize_model(keras.Sequential([...]))
```

## Use instead
```python
import os
os.environ["TF_USE_LEGACY_KERAS"] = "1"
import tf_keras as keras
import tensorflow_model_optimization as tfmot
```
For a saved Keras 3 model: `qfix model.keras --mode qat` writes the tf_keras translation
(`model.qfix.qat.keras`), or use post-training quantization (qfix's default, `--mode ptq`).

## Fix safety
Source: unsafe, the model is then built by tf_keras instead of Keras 3 (needs `pip install
tf_keras` matching the TF minor version; Keras-3-only APIs differ). No fix is offered when
the file uses Keras-3-only APIs (`keras.ops`, ...).

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

from qfix.source.names import dotted
from qfix.source.rule import InsertStatements, Invalid, Replace, SourceRule, Valid, statements
from qfix.source.util import iter_nodes, string_value
from qfix.types import Applicability
from qfix.model.cases import functional_config
from qfix.rules.base import ModelCase, ModelRule

ENV_LINES = 'import os\nos.environ["TF_USE_LEGACY_KERAS"] = "1"\n'
_KERAS3_ONLY = ("keras.ops", "keras.src", "keras.random", "keras.tree", "keras.quantizers", "keras.export", "keras.distribution", "keras.config")


def _stmt_imports(stmt: cst.CSTNode) -> list[cst.Import | cst.ImportFrom]:
    if isinstance(stmt, cst.SimpleStatementLine):
        return [s for s in stmt.body if isinstance(s, (cst.Import, cst.ImportFrom))]
    return []


def _top_level(module: cst.Module) -> list[cst.CSTNode]:
    """Top-level statements, with the bodies of top-level try/if blocks flattened in."""
    out: list[cst.CSTNode] = []
    for stmt in module.body:
        if isinstance(stmt, (cst.Try, cst.If)) and isinstance(stmt.body, cst.IndentedBlock):
            out.extend(stmt.body.body)
        else:
            out.append(stmt)
    return out


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
    ]
    INVALID = [
        Invalid(
            "import keras\nimport tensorflow_model_optimization as tfmot\n",
            expected='import os\nos.environ["TF_USE_LEGACY_KERAS"] = "1"\nimport tf_keras as keras\nimport tensorflow_model_optimization as tfmot\n',
            applicability=Applicability.UNSAFE,
        ),
        Invalid(
            '"""Train."""\nfrom tensorflow import keras\nfrom tensorflow.keras import layers\nimport tensorflow_model_optimization as tfmot\n',
            expected='"""Train."""\nimport os\nos.environ["TF_USE_LEGACY_KERAS"] = "1"\nimport tf_keras as keras\nfrom tf_keras import layers\nimport tensorflow_model_optimization as tfmot\n',
            count=2,
        ),
        Invalid(
            "import tensorflow as tf\nbase = tf.keras.applications.MobileNetV2()\nimport tensorflow_model_optimization as tfmot\n",
            expected='import os\nos.environ["TF_USE_LEGACY_KERAS"] = "1"\nimport tensorflow as tf\nbase = tf.keras.applications.MobileNetV2()\nimport tensorflow_model_optimization as tfmot\n',
        ),
        Invalid(
            "import keras\nimport tensorflow_model_optimization as tfmot\ny = keras.ops.relu(x)\n",
            applicability=Applicability.DISPLAY_ONLY,
        ),
    ]

    def finish(self) -> None:
        if not self.names.imports_module("tensorflow_model_optimization"):
            return
        module = self.ctx.module
        top = _top_level(module)
        tfmot_idx = len(top)
        tf_idx = len(top)
        env_idx = None
        for i, stmt in enumerate(top):
            for imp in _stmt_imports(stmt):
                mods = [dotted(a.name) or "" for a in imp.names] if isinstance(imp, cst.Import) else [dotted(imp.module) if imp.module else ""]
                if any(m and (m == "tensorflow_model_optimization" or m.startswith("tensorflow_model_optimization.")) for m in mods):
                    tfmot_idx = min(tfmot_idx, i)
                if any(m and (m.split(".")[0] in ("tensorflow", "tensorflow_model_optimization")) for m in mods):
                    tf_idx = min(tf_idx, i)
            if env_idx is None and self._sets_env(stmt):
                env_idx = i
        env_ok = env_idx is not None and env_idx < tf_idx
        keras3_only = any(
            (q := self.names.canon(n)) is not None and q.startswith(_KERAS3_ONLY) and (self.names.qualified(n) or "").startswith("keras")
            for n in iter_nodes(module) if isinstance(n, cst.Attribute)
        ) if "keras." in self.ctx.code else False
        env_edit = InsertStatements(None, statements(ENV_LINES))

        def report(node: cst.CSTNode, msg: str, edits: list) -> None:
            if keras3_only:
                self.report(node, msg, fix="Build the model with tf_keras (Keras-3-only APIs are used here)", applicability=Applicability.DISPLAY_ONLY)
            else:
                self.report(node, msg, fix="Use tf_keras and set TF_USE_LEGACY_KERAS=1 before importing TensorFlow", applicability=Applicability.UNSAFE, edits=edits)

        for i, stmt in enumerate(top):
            for imp in _stmt_imports(stmt):
                if isinstance(imp, cst.Import):
                    for alias in imp.names:
                        name = dotted(alias.name) or ""
                        if name == "keras":
                            new = cst.ImportAlias(name=cst.Name("tf_keras"), asname=alias.asname or cst.AsName(name=cst.Name("keras")))
                            report(alias, "`import keras` is Keras 3; tfmot needs tf_keras models", [Replace(alias, new), env_edit])
                        elif name.startswith("keras."):
                            report(alias, f"`import {name}` is Keras 3; tfmot needs tf_keras models", [])
                        elif (name == "tensorflow.keras" or name.startswith("tensorflow.keras.")) and i < tfmot_idx and not env_ok:
                            report(alias, f"`import {name}` before tfmot makes `tf.keras` Keras 3", [env_edit])
                    continue
                if imp.relative or imp.module is None:
                    continue
                mod = dotted(imp.module) or ""
                if mod == "keras" or mod.startswith("keras."):
                    report(imp, f"`from {mod} import ...` is Keras 3; tfmot needs tf_keras models", [Replace(imp.module, cst.parse_expression("tf_keras" + mod[5:])), env_edit])
                elif i < tfmot_idx and not env_ok and (mod == "tensorflow.keras" or mod.startswith("tensorflow.keras.")):
                    report(imp, f"`from {mod} import ...` before tfmot is imported gives Keras 3 objects", [Replace(imp.module, cst.parse_expression("tf_keras" + mod[len('tensorflow.keras'):])), env_edit])
                elif i < tfmot_idx and not env_ok and mod == "tensorflow" and not isinstance(imp.names, cst.ImportStar):
                    ks = [a for a in imp.names if (dotted(a.name) or "") == "keras"]
                    if not ks:
                        continue
                    edits: list = [env_edit]
                    if len(imp.names) == 1:
                        asname = ks[0].asname or cst.AsName(name=cst.Name("keras"))
                        edits.insert(0, Replace(imp, cst.Import(names=[cst.ImportAlias(name=cst.Name("tf_keras"), asname=asname)])))
                    report(imp, "`from tensorflow import keras` before tfmot is imported gives Keras 3 objects", edits)
            if i < tfmot_idx and not env_ok and not isinstance(stmt, (cst.FunctionDef, cst.ClassDef)) and not _stmt_imports(stmt):
                for n in iter_nodes(stmt):
                    if isinstance(n, cst.Attribute) and (self.names.qualified(n) or "") == "tensorflow.keras":
                        report(n, "`tf.keras` is used before tfmot is imported, so it is Keras 3", [env_edit])
                        break

    def _sets_env(self, stmt: cst.CSTNode) -> bool:
        for n in iter_nodes(stmt):
            if isinstance(n, cst.SimpleString) and string_value(n) == "TF_USE_LEGACY_KERAS":
                return True
        return False


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
