"""qfix's own error codes (QF9xx): bad input or usage. Each is one line and exit status 2.

`DOCS` holds one short Markdown text per code (what causes it, what to do); `qfix rule QF9xx`
prints it through `qfix.rules.docs.doc_for`.
"""

from __future__ import annotations

from qfix.types import QfixError

# code -> short name; documented in README.md ("Errors").
CODES = {
    "QF901": "not-a-keras-archive",
    "QF902": "unsafe-archive-member",
    "QF903": "archive-too-large",
    "QF904": "malformed-config",
    "QF905": "weights-missing-or-truncated",
    "QF906": "unsupported-model-format",
    "QF907": "input-not-found",
    "QF908": "bad-calibration-data",
    "QF909": "conversion-failed",
    "QF910": "unknown-target",
    "QF911": "custom-objects-import-failed",
    "QF912": "bad-target-profile",
    "QF913": "output-write-failed",
    "QF914": "bad-usage",
    "QF917": "untrusted-reference",  # numbered after QF915/QF916, which source runs report
    "QF999": "internal-error",
    # reported as findings by source runs, which go on with the next file
    "QF915": "source-parse-error",
    "QF916": "fix-failed",
}

_EXIT = "qfix prints one line `QF9xx message` on stderr and exits with status 2; nothing is written."

DOCS = {
    "QF901": f"""
## What causes it
The model file is not a Keras 3 `.keras` archive: not a zip file, or a zip without
`config.json` / `metadata.json`. {_EXIT}

## What to do
Save the model with `model.save("model.keras")` (Keras 3 or tf_keras 2.13+) and pass that file.
""",
    "QF902": f"""
## What causes it
A member of the `.keras` zip has an absolute path, a `..` component or is a symlink. qfix
never extracts such an archive: it could write outside its folder. {_EXIT}

## What to do
Re-save the model from Keras. If the file came from someone else, do not load it with Keras
either.
""",
    "QF903": f"""
## What causes it
The archive, one of its members or its compression ratio is over qfix's caps (a zip-bomb
guard), checked before anything is read. {_EXIT}

## What to do
Check that the file is the model you meant. A genuine model this large is not a target for
an 8-bit accelerator; save a smaller one.
""",
    "QF904": f"""
## What causes it
`config.json` or `metadata.json` in the archive is not valid JSON, or lacks the keys of a
Keras functional or Sequential model config (`class_name`, `config`, layers and their
inbound nodes). {_EXIT}

## What to do
Re-save the model with Keras. A hand-edited config must keep the format Keras writes.
""",
    "QF905": f"""
## What causes it
`model.weights.h5` is missing from the archive, is not an HDF5 file, or cannot be read
(truncated or corrupt); or Keras, loading it, finds that it does not fit `config.json`: a layer
gets fewer or more arrays than it has variables, or an array of another shape (the message
names the layer or variable and both counts or shapes). {_EXIT}

## What to do
Re-save the model after it is built (`model.save` after the first call or `build`), and
check the copy is complete and that its weights come from the same model.
""",
    "QF906": f"""
## What causes it
The input is a model qfix cannot read or load: a folder (SavedModel) instead of a `.keras`
file, or a model the Keras that saved it cannot load again (a legacy `.h5` file, a subclassed
model; the message carries Keras's reason). {_EXIT}

## What to do
Load it in Keras and save it as `.keras`; for a subclassed model, rebuild it as a functional
model.
""",
    "QF907": f"""
## What causes it
A path on the command line does not exist. {_EXIT}

## What to do
Check the path (relative paths are taken from the current folder).
""",
    "QF908": f"""
## What causes it
The `--calibration` data cannot be used: the file or folder does not exist, is not `.npz`,
`.npy` or a folder of images, an image does not decode (named in the message), the arrays
do not match the model's inputs (names, shapes, dtype), hold NaN/inf, or hold no samples.
Checked before TensorFlow is loaded. {_EXIT}

## What to do
Pass float samples shaped like the model's inputs: an `.npz` keyed by input name (several
inputs), an `.npy` of shape `(N, *input_shape)` (one input), or a folder of jpg/png images for
an image input. Without `--calibration` qfix uses synthetic data and says so.
""",
    "QF909": f"""
## What causes it
The TFLite converter failed on the model with the target's recipe; the message carries the
converter's own first line. Or the worker process that loads, converts and interprets the
model crashed (a native crash of TensorFlow: the signal, the stage and a layer known to cause
it are named), exceeded the time limit of a stage (`QFIX_STAGE_TIMEOUT`, seconds, default 1800)
or ran out of memory (`QFIX_MEMORY_LIMIT`, default the machine's RAM). {_EXIT}
A crash whose cause qfix knows (a rolled Keras 3 RNN, QF305) is not this error: it is reported
in the model's report, beside the finding that explains it.

## What to do
Run `qfix MODEL.keras --static` for the findings that explain most failures (unsupported
layers, dynamic shapes, Lambda layers), fix them, and try again.
For a crash, change or replace the layer the message names; for a limit, raise it if the
model is genuinely that large or slow.
""",
    "QF910": f"""
## What causes it
`--target` (or `target` in `[tool.qfix]`) names no built-in profile and no readable profile
`.toml` file. {_EXIT}

## What to do
`qfix targets` lists the built-in profiles; or pass the path of a profile `.toml`.
""",
    "QF911": f"""
## What causes it
`--custom-objects MODULE` could not be imported (the message carries the exception). {_EXIT}

## What to do
Pass an importable module name (on `PYTHONPATH`, or the current folder) whose import
registers the custom layer classes the model uses.
""",
    "QF912": f"""
## What causes it
A target profile `.toml` is not valid TOML (the message gives the line) or breaks the profile
schema: an unknown key at any level, a value of the wrong type, an unknown predicate, a rule
argument its predicate does not take, an op name that is not a TFLite builtin, a bad recipe
value; or the path is missing, a folder, or not UTF-8. The message names the key. {_EXIT}

## What to do
Start from `examples/targets/my_npu.toml` (every key, commented) or a built-in profile in
`qfix/targets/` and change only what differs; `qfix targets my_npu.toml` shows how qfix
reads it.
""",
    "QF913": f"""
## What causes it
An output could not be written: its folder (or the `--out-dir` to be made) is not writable,
a folder or special file sits where an output goes, the disk is full (or has less free space
than the input's size, checked before the conversion), a source file could not be replaced,
or the output would overwrite the input model without `--in-place`. A run's outputs are
written all or none, so no output and no temp file is left, and the input is unchanged. {_EXIT}

## What to do
Check the permissions and free space of the folder in the message, or choose another with
`--out-dir`.
""",
    "QF914": f"""
## What causes it
The command line or `[tool.qfix]` configuration is wrong: an unknown option or value, an
unknown `--select` / `--ignore` code, options that do not combine, a malformed `--memory`
(`flash=1MB,ram=256KB`; units B, KB = KiB, MB = MiB) or a `ram=` budget for a target whose
run measures no RAM, or a configuration key of the wrong type. {_EXIT}

## What to do
Read the message and `qfix --help`; `qfix rules` lists the rule codes.
""",
    "QF915": """
## What causes it
A Python source file does not parse (a syntax error, an unreadable encoding, or nesting too
deep to analyse). Reported as a finding: the run goes on with the next file and exits 1.

## What to do
Fix the syntax error at the position given; qfix checks the file again on the next run.
""",
    "QF916": """
## What causes it
A source fix would have produced a file that does not parse, the fixes did not settle after
ten rounds, or a rule failed on the file. The file keeps its last good text. Reported as a
finding: the run goes on and exits 1.

## What to do
Apply the remaining fixes by hand, and report the file to qfix's issue tracker: it is a bug.
""",
    "QF999": """
## What causes it
A bug in qfix: an exception no error mapping foresaw. The line names the exception; nothing is
written (outputs are one transaction), and the input is never modified.

## What to do
Run again with `QFIX_DEBUG=1` to see the traceback, and report it with the file (or a
smaller file that shows the same) and `qfix --version`.
""",
    "QF917": f"""
## What causes it
Before Keras loads a model, qfix vets every module its config.json names. Keras resolves a
class it does not know by importing the `module` the file gives, which runs that module's code;
tf_keras does so even for the model's own top-level `module`. A module outside Keras' own
packages (`keras.*`, `tf_keras.*`; a look-alike such as `kerasevil` is outside) is refused
unless the class is registered by your `--custom-objects` module, and a Lambda function needs
`--trust-lambdas`. The check does not depend on `--select` / `--ignore`. {_EXIT}

## What to do
If you trust the code, pass `--custom-objects MODULE` (the module that registers the class with
`register_keras_serializable`) or `--trust-lambdas`. Otherwise do not load the file: it asks
to import code that is not part of Keras.
""",
}


def error(code: str, message: str) -> QfixError:
    assert code in CODES, code
    return QfixError(code, message)


def first_line(exc: BaseException, limit: int | None = 300) -> str:
    """The first line of an exception's message (its class name when it has none), cut at
    `limit` characters: what a one-line QF9xx error quotes of a library's paragraph."""
    text = str(exc).strip()
    line = text.splitlines()[0] if text else type(exc).__name__
    return line if limit is None else line[:limit]
