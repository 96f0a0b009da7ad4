"""Build the hostile-input corpus from the fixtures: every kind of the hardening issue, each
with at least two members. Each builder writes its input into a folder and returns a `Case`.

    python tests/hostile/corpus.py OUT_DIR     # writes the corpus and lists it

The test suite (tests/cli/test_hostile_corpus.py) builds the same cases in a temp folder and
runs the installed console script on each. Nothing here needs TensorFlow.
"""

from __future__ import annotations

import io
import json
import os
import sys
import zipfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import h5py
import numpy as np

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures"
K3 = FIXTURES / "tiny_cnn_k3.keras"
TFK = FIXTURES / "tiny_cnn_tfk.keras"
# A module whose import leaves a file behind: proof that qfix imported a name from the model.
MARKER_MODULE = "qfix_hostile_marker"
MARKER_FILE = "IMPORTED-BY-QFIX"


@dataclass
class Case:
    kind: str  # the fault kind, e.g. "1a external storage"
    name: str
    path: Path
    args: tuple[str, ...] = ("--static",)
    codes: tuple[str, ...] = ("QF9",)  # accepted prefixes of the one error line (exit 2)
    exit_codes: tuple[int, ...] = (2,)
    needs_tf: bool = False
    env: dict[str, str] = field(default_factory=dict)
    secret: bytes | None = None  # bytes from outside the archive that must appear in no output


def members(src: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(src) as z:
        return {n: z.read(n) for n in z.namelist()}


def write_keras(path: Path, files: dict[str, bytes], compression: int = zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression) as z:
        for name, data in files.items():
            z.writestr(name, data)
    return path


def edit_weights(src: Path, change: Callable[[h5py.File], None]) -> dict[str, bytes]:
    files = members(src)
    buf = io.BytesIO(files["model.weights.h5"])
    with h5py.File(buf, "r+") as f:
        change(f)
    files["model.weights.h5"] = buf.getvalue()
    return files


def edit_config(src: Path, change: Callable[[dict], object]) -> dict[str, bytes]:
    files = members(src)
    cfg = json.loads(files["config.json"])
    out = change(cfg)
    files["config.json"] = out if isinstance(out, bytes) else json.dumps(cfg).encode()
    return files


def marker_env(folder: Path) -> dict[str, str]:
    """PYTHONPATH entry holding the marker module (appended by the test to its own path)."""
    mod = folder / f"{MARKER_MODULE}.py"
    mod.write_text(f"open({str(folder / MARKER_FILE)!r}, 'w').write('imported')\n"
                   "class Functional: pass\nclass Dense: pass\n")
    return {"QFIX_TEST_EXTRA_PATH": str(folder)}


# -- kind 1: references out of the archive ------------------------------------------------------

def external_storage(folder: Path) -> list[Case]:
    secret = folder / "secret.bin"
    secret.write_bytes(b"TOP-SECRET-BYTES")

    def bias_from_file(f: h5py.File) -> None:
        del f["layers/dense/vars/1"]
        f.create_dataset("layers/dense/vars/1", shape=(4,), dtype="<f4", external=[(str(secret), 0, 16)])

    def virtual(f: h5py.File) -> None:
        other = folder / "other.h5"
        with h5py.File(other, "w") as o:
            o["x"] = np.frombuffer(b"TOP-SECRET-BYTES", dtype="<f4")
        layout = h5py.VirtualLayout(shape=(4,), dtype="<f4")
        layout[:] = h5py.VirtualSource(str(other), "x", shape=(4,))
        del f["layers/dense/vars/1"]
        f.create_virtual_dataset("layers/dense/vars/1", layout)

    def ext_link(f: h5py.File) -> None:
        del f["layers/dense/vars/1"]
        f["layers/dense/vars/1"] = h5py.ExternalLink(str(folder / "other.h5"), "/x")

    out = []
    for name, change in (("external-storage", bias_from_file), ("virtual-dataset", virtual),
                         ("external-link", ext_link)):
        for src, dialect in ((TFK, "tfk"), (K3, "k3")):
            p = write_keras(folder / f"1a-{name}-{dialect}.keras", edit_weights(src, change))
            for args in (("--static",), ("--check",), ("--diff",)):
                out.append(Case("1a references out of the archive (HDF5)", f"{name}-{dialect}{''.join(args)}", p,
                                args, ("QF902",), secret=b"TOP-SECRET-BYTES"))
    return out


def foreign_modules(folder: Path) -> list[Case]:
    env = marker_env(folder)

    def top_module(cfg: dict) -> None:
        cfg["module"] = MARKER_MODULE

    def layer_module(cfg: dict) -> None:
        cfg["config"]["layers"][-1]["module"] = MARKER_MODULE

    def kerasevil(cfg: dict) -> None:
        cfg["config"]["layers"][-1]["module"] = "kerasevil.layers"

    out = []
    for name, src, change in (("top-module-tfk", TFK, top_module), ("top-module-k3", K3, top_module),
                              ("layer-module-tfk", TFK, layer_module), ("layer-module-k3", K3, layer_module)):
        p = write_keras(folder / f"1b-{name}.keras", edit_config(src, change))
        for args in (("--check",), ("--check", "--ignore", "QF203"), ()):
            out.append(Case("1b module named by the file", f"{name}{''.join(args)}", p, args,
                            ("QF917", "QF203"), (1, 2), needs_tf=True, env=env))
    for src, dialect in ((K3, "k3"), (TFK, "tfk")):
        p = write_keras(folder / f"1c-kerasevil-{dialect}.keras", edit_config(src, kerasevil))
        out.append(Case("1c lookalike module", f"kerasevil-{dialect}-static", p, ("--static",), ("QF203",), (1,)))
        for args in (("--check", "--select", "QF3"), ("--check", "--ignore", "QF203")):
            out.append(Case("1c filtered findings never open the loader", f"kerasevil-{dialect}{''.join(args)}",
                            p, args, ("QF917",), (2,), needs_tf=True, env=env))
    return out


# -- kind 3: zip errors ------------------------------------------------------------------------

def zip_faults(folder: Path) -> list[Case]:
    out = []
    for src, dialect in ((K3, "k3"), (TFK, "tfk")):
        p = folder / f"3-encrypted-{dialect}.keras"
        raw = bytearray(src.read_bytes())
        # set bit 0 (encrypted) of the general-purpose flags in every local and central header
        for sig, off in ((b"PK\x03\x04", 6), (b"PK\x01\x02", 8)):
            i = raw.find(sig)
            while i != -1:
                raw[i + off] |= 0x01
                i = raw.find(sig, i + 4)
        p.write_bytes(bytes(raw))
        out.append(Case("3 zip errors", f"encrypted-{dialect}", p, ("--static",), ("QF901",)))
        out.append(Case("3 zip errors", f"encrypted-{dialect}-diff", p, ("--diff",), ("QF901",)))
        # one flipped byte inside the stored weights: the CRC no longer matches
        raw = bytearray(src.read_bytes())
        with zipfile.ZipFile(src) as z:
            info = z.getinfo("model.weights.h5")
        start = info.header_offset + 30 + len(info.filename.encode()) + len(info.extra)
        raw[start + info.file_size - 5] ^= 0xFF
        p = folder / f"3-crc-{dialect}.keras"
        p.write_bytes(bytes(raw))
        for args in (("--diff",), ("--check",)):
            out.append(Case("3 zip errors", f"crc-{dialect}{''.join(args)}", p, args, ("QF901", "QF905")))
    return out


# -- kind 4: special files and amplification ---------------------------------------------------

def mismatched_weights(folder: Path) -> list[Case]:
    """Weights that do not fit the config (review of issue 9: a GRU's config with an LSTM's
    weights was QF906 with Keras's message cut off): QF905 naming the layer or variable."""
    def drop_bias(f):
        del f["layers/dense/vars/1"]

    def drop_layer(f):
        del f["layers/dense/vars/0"], f["layers/dense/vars/1"]

    def wider_kernel(f):
        kernel = f["layers/dense/vars/0"][()]
        del f["layers/dense/vars/0"]
        f["layers/dense/vars/0"] = np.zeros((kernel.shape[0] + 1, kernel.shape[1]), kernel.dtype)

    out = []
    for src, dialect in ((K3, "k3"), (TFK, "tfk")):
        for name, change, says in (("drop-bias", drop_bias, "layer 'dense' has 2 weight arrays, the file holds 1"),
                                   ("drop-layer", drop_layer, "layer 'dense' has 2 weight arrays, the file holds 0"),
                                   ("wider-kernel", wider_kernel, "variable 'dense/kernel' has shape (8, 4), the file holds (9, 4)")):
            p = write_keras(folder / f"3-weights-{name}-{dialect}.keras", edit_weights(src, change))
            out.append(Case("3 weights that do not fit the config", f"weights-{name}-{dialect}", p, ("--check",),
                            (f"QF905 {p.name}: the weights do not match the model's config: {says}",),
                            needs_tf=True))
    return out


def special_files(folder: Path) -> list[Case]:
    out = []
    fifo = folder / "4-fifo.keras"
    os.mkfifo(fifo)
    out.append(Case("4 special files", "fifo", fifo, ("--static",), ("QF901",)))
    out.append(Case("4 special files", "fifo-check", fifo, ("--check",), ("QF901",)))
    for dev in ("/dev/zero", "/dev/urandom"):
        link = folder / f"4-link-{Path(dev).name}.keras"
        link.symlink_to(dev)
        out.append(Case("4 special files", f"symlink-{Path(dev).name}", link, ("--static",), ("QF901",)))
    return out


def deflated_weights(folder: Path, mib: int = 64) -> list[Case]:
    """Weights padded with `mib` MiB of zeros, deflated (~1000:1 is refused; this stays under the
    ratio guard by mixing in random bytes). `--static` must not inflate them."""
    def pad(f: h5py.File) -> None:
        rng = np.random.default_rng(0)
        block = np.zeros(mib * 1024 * 256, dtype="<f4")
        block[:: 150] = rng.standard_normal(block[:: 150].shape).astype("<f4")
        f.create_dataset("padding", data=block)

    p = write_keras(folder / "4-deflated.keras", edit_weights(K3, pad), zipfile.ZIP_DEFLATED)
    return [Case("4 amplification", "deflated-static", p, ("--static",), ("",), (0, 1))]


# -- kind 5: depth the file controls -------------------------------------------------------------

def depth(folder: Path) -> list[Case]:
    def deep_list(cfg: dict) -> bytes:
        cfg["config"]["layers"][1]["config"]["deep"] = "@@"
        return json.dumps(cfg).replace('"@@"', "[" * 800 + "]" * 800).encode()

    def deep_nesting(cfg: dict) -> None:
        inner = dict(cfg)
        for _ in range(200):
            inner = {"class_name": "Functional", "module": "keras.src.models.functional",
                     "config": {"name": "m", "layers": [inner], "input_layers": [], "output_layers": []}}
        cfg.clear()
        cfg.update(inner)

    out = []
    for name, change in (("deep-list", deep_list), ("nested-200", deep_nesting)):
        p = write_keras(folder / f"5-{name}.keras", edit_config(K3, change))
        for args in (("--static",), ("--diff",)):
            out.append(Case("5 depth", f"{name}{''.join(args)}", p, args, ("QF904",)))
    return out


# -- kind 2: untrusted types -------------------------------------------------------------------

def wrong_types(folder: Path) -> list[Case]:
    """Values of the wrong type where qfix reads the config (each was a traceback once)."""
    def huge_index(cfg: dict) -> bytes:  # a node index of 1e400: JSON gives inf
        return json.dumps(cfg).replace('"keras_history": ["conv2d", 0, 0]', '"keras_history": ["conv2d", 1e400, 0]', 1).encode()

    def policy_string(cfg: dict) -> None:
        cfg["config"]["layers"][1]["config"]["dtype"] = {"class_name": "DTypePolicy", "config": "x"}

    def class_name_list(cfg: dict) -> None:
        cfg["class_name"] = []

    def shape_bool(cfg: dict) -> None:
        cfg["config"]["layers"][0]["config"]["batch_shape"] = [None, True, 32, 3]

    def shape_huge(cfg: dict) -> None:
        cfg["config"]["layers"][0]["config"]["batch_shape"] = [None] + [2] * 10**6

    def dim_huge(cfg: dict) -> None:
        cfg["config"]["layers"][0]["config"]["batch_shape"] = [None, 10**6, 10**6, 3]

    def name_number(cfg: dict) -> None:
        cfg["config"]["layers"][2]["name"] = 7

    def nodes_string(cfg: dict) -> None:
        cfg["config"]["layers"][2]["inbound_nodes"] = "conv2d"

    out = []
    for name, change in (("huge-index", huge_index), ("policy-string", policy_string),
                         ("class-name-list", class_name_list), ("shape-bool", shape_bool),
                         ("shape-million-dims", shape_huge), ("dim-million", dim_huge),
                         ("name-number", name_number), ("nodes-string", nodes_string)):
        p = write_keras(folder / f"2-{name}.keras", edit_config(K3, change))
        for args in (("--static",), ("--diff",)):
            out.append(Case("2 untrusted types", f"{name}{''.join(args)}", p, args, ("QF904",)))
    return out


# -- kind 6: graphs that are not graphs ----------------------------------------------------------

def not_graphs(folder: Path) -> list[Case]:
    def cycle_tfk(cfg: dict) -> None:  # conv2d reads the last layer, which reads conv2d...
        layers = cfg["config"]["layers"]
        layers[1]["inbound_nodes"] = [[[layers[-1]["config"]["name"], 0, 0, {}]]]

    def cycle_k3(cfg: dict) -> bytes:
        return json.dumps(cfg).replace('"keras_history": ["input_layer", 0, 0]', '"keras_history": ["dense", 0, 0]').encode()

    def dangling(cfg: dict) -> bytes:
        return json.dumps(cfg).replace('"keras_history": ["conv2d", 0, 0]', '"keras_history": ["conv2d", 3, 0]', 1).encode()

    def duplicate(cfg: dict) -> None:
        layers = cfg["config"]["layers"]
        layers.append(json.loads(json.dumps(layers[-1])))

    def unknown_layer(cfg: dict) -> bytes:
        return json.dumps(cfg).replace('"keras_history": ["conv2d", 0, 0]', '"keras_history": ["ghost", 0, 0]', 1).encode()

    out = []
    for name, src, change in (("cycle-tfk", TFK, cycle_tfk), ("cycle-k3", K3, cycle_k3),
                              ("dangling-node-k3", K3, dangling), ("duplicate-name-tfk", TFK, duplicate),
                              ("unknown-layer-k3", K3, unknown_layer)):
        p = write_keras(folder / f"6-{name}.keras", edit_config(src, change))
        for args in (("--static",), ("--check",), ()):
            out.append(Case("6 graphs that are not graphs", f"{name}{''.join(args) or '-main-job'}", p, args,
                            ("QF904",)))
    return out


def long_chain(folder: Path, n: int = 1000) -> list[Case]:
    """A chain of `n` ReLU layers with one fixable LeakyReLU at the end (kind 5: every walk
    over the layers must be iterative)."""
    from qfix.model.cases import empty_weights, functional_config

    layers, prev = [], "x"
    for i in range(n):
        layers.append((f"r{i}", "ReLU", {}, [prev]))
        prev = f"r{i}"
    layers.append(("leaky", "LeakyReLU", {"negative_slope": 0.1}, [prev]))
    cfg = functional_config([("x", (1, 8), "float32")], layers, ["leaky"])
    meta = json.dumps({"keras_version": "3.15.1", "date_saved": "2026-11-30@00:00:00"}).encode()
    p = write_keras(folder / f"5-chain-{n}.keras", {"metadata.json": meta, "config.json": json.dumps(cfg).encode(),
                                                    "model.weights.h5": empty_weights(cfg)})
    return [Case("5 depth", f"chain-{n}-static", p, ("--static",), ("QF302",), (1,)),
            Case("5 depth", f"chain-{n}-diff", p, ("--diff",), ("PReLU",), (1,))]


# -- kind 9: output that is not sanitized --------------------------------------------------------

ESCAPE = "x\x1b]0;pwned\x07\x1b[2Jy\u202e"


def terminal_escapes(folder: Path) -> list[Case]:
    """A layer name and a file name that carry terminal control sequences and a bidi override;
    the test asserts no ESC reaches stdout or stderr and every error stays one line."""
    def rename(cfg: dict) -> bytes:
        """The first LeakyReLU gets the name (QF302 reports it, the main job rewrites it and
        names it in its notes and op table): every reference to it is renamed."""
        return json.dumps(cfg).replace('"leaky_re_lu"', json.dumps(ESCAPE)).encode()

    out = []
    for dialect in ("k3", "tfk"):
        src = FIXTURES / f"leaky_relu_cnn_{dialect}.keras"
        p = write_keras(folder / f"9-escape-layer-{dialect}.keras", edit_config(src, rename))
        out.append(Case("9 output not sanitized", f"escape-layer-{dialect}", p, ("--static",), ("QF302",), (1,)))
        # TF refuses such a name as a scope name: the conversion error must quote it escaped
        out.append(Case("9 output not sanitized", f"escape-layer-{dialect}-main-job", p, (), ("QF909", "QF906"), (2,),
                        needs_tf=True))
    bad = folder / "9-new\nline\x1b[2J.keras"
    bad.write_bytes(b"not a zip")
    out.append(Case("9 output not sanitized", "newline-file-name", bad, ("--static",), ("QF901",)))
    src = folder / "9-new\nline\x1b[31m.py"
    src.write_text("import tensorflow as tf\nx = tf.cast(tf.random.normal((1, 3)) / 2.0, tf.uint8)\n")
    out.append(Case("9 output not sanitized", "newline-source-name", src, (), ("",), (0, 1)))
    return out


BUILDERS = (external_storage, foreign_modules, wrong_types, zip_faults, mismatched_weights, special_files,
            deflated_weights, depth, long_chain, not_graphs, terminal_escapes)


def build(folder: Path) -> list[Case]:
    folder.mkdir(parents=True, exist_ok=True)
    return [case for b in BUILDERS for case in b(folder)]


if __name__ == "__main__":
    for c in build(Path(sys.argv[1])):
        print(f"{c.kind:<45} {c.name:<40} {' '.join(c.args)}")
