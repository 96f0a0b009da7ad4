"""Read a `.keras` archive safely: nothing in it is executed, every member is validated.

A `.keras` file is a zip with `metadata.json`, `config.json` and `model.weights.h5` (plus an
optional `assets/` folder). We refuse anything that is not a regular file (a FIFO would block,
`/dev/zero` never ends), check member names (no traversal), flags (no encryption), sizes
(against zip bombs), JSON nesting depth and the expected members before parsing anything, and
read the weights with h5py only to index them and to vet what they reference
(`qfix.model.vet.check_hdf5`: no external files, links or filter plugins).

Weights are never inflated just to be checked: a stored member (how Keras writes it) is vetted
in place; a deflated one gets its magic checked from the first bytes and is vetted in full when
`KerasArchive.weights_bytes` reads it, inside the same error mapping (CRC included).
"""

from __future__ import annotations

import io
import json
import os
import stat
import zipfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import IO, Any

from qfix.errors import error, first_line
from qfix.model.schema import validate as validate_config

# Caps: generous for real models (ResNet152 weights are ~240 MB), small enough that a
# crafted archive cannot exhaust memory or disk.
MAX_MEMBERS = 10_000
MAX_JSON_BYTES = 64 * 1024 * 1024
MAX_WEIGHTS_BYTES = 4 * 1024 * 1024 * 1024
MAX_TOTAL_BYTES = 6 * 1024 * 1024 * 1024
MAX_RATIO = 200  # deflate tops out near 1000:1 only on degenerate data; real members stay far below
# JSON nesting: a Keras 3 layer sits ~6 levels below its model, so this allows ~20 nested models
# while keeping every later walk (and copy.deepcopy) far from Python's recursion limit.
MAX_JSON_DEPTH = 128

REQUIRED = ("config.json", "metadata.json", "model.weights.h5")
HDF5_MAGIC = b"\x89HDF\r\n\x1a\n"


@dataclass
class WeightsIndex:
    """Paths of every variable in model.weights.h5 (e.g. `layers/conv2d/vars/0`) and shapes."""

    variables: dict[str, tuple[int, ...]] = field(default_factory=dict)
    groups: set[str] = field(default_factory=set)


@dataclass
class KerasArchive:
    path: Path
    config: dict[str, Any]
    metadata: dict[str, Any]
    members: list[str]
    dialect: str  # "keras3" or "tf_keras"
    _weights: WeightsIndex | None = field(default=None, repr=False)
    _weights_bytes: bytes | None = field(default=None, repr=False)

    @property
    def weights_bytes(self) -> bytes:
        """The raw model.weights.h5, read on first use: CRC-checked and vetted (QF901/QF902/
        QF905 on a damaged, changed or out-reaching file, never a zipfile exception)."""
        if self._weights_bytes is None:
            try:
                _check_regular(self.path)
                with zipfile.ZipFile(self.path) as zf:
                    data = _read_capped(zf, zf.getinfo("model.weights.h5"), MAX_WEIGHTS_BYTES)
            except (zipfile.BadZipFile, KeyError, EOFError, NotImplementedError) as exc:
                raise error("QF901", f"{self.path.name}: model.weights.h5 cannot be read from the archive: "
                                     f"{first_line(exc, limit=200)}") from None
            except OSError as exc:
                raise error("QF907", f"{self.path.name}: cannot read ({exc.strerror or exc})") from None
            check_weights(data, f"{self.path.name}: model.weights.h5")
            self._weights_bytes = data
        return self._weights_bytes

    @property
    def weights(self) -> WeightsIndex:
        """Every variable path and shape; built on first use (walking a large h5 costs seconds,
        and the static rules do not need it)."""
        if self._weights is None:
            self._weights = index_weights(self.weights_bytes, f"{self.path.name}: model.weights.h5")
        return self._weights

    @property
    def keras_version(self) -> str:
        return str(self.metadata.get("keras_version", "?"))


def _check_member_name(name: str) -> None:
    p = PurePosixPath(name)
    if (
        not name
        or "\\" in name
        or "\x00" in name
        or name.startswith("/")
        or (len(name) > 1 and name[1] == ":")
        or any(part in ("..", "") for part in p.parts)
    ):
        raise error("QF902", f"archive member {name!r} has an unsafe path (absolute or traversal)")


def _read_capped(zf: zipfile.ZipFile, info: zipfile.ZipInfo, cap: int) -> bytes:
    """Read a member but never more than `cap` bytes, whatever its header claims."""
    with zf.open(info) as fh:
        data = fh.read(cap + 1)
    if len(data) > cap:
        raise error("QF903", f"archive member {info.filename!r} is larger than {cap} bytes")
    return data


class _StoredMember(io.RawIOBase):
    """A seekable read-only window on an uncompressed zip member, so h5py can check the
    superblock without reading (or copying) the whole weights file."""

    def __init__(self, fh: IO[bytes], info: zipfile.ZipInfo):
        fh.seek(info.header_offset)
        header = fh.read(30)
        if len(header) < 30 or header[:4] != b"PK\x03\x04":
            raise error("QF901", f"zip entry {info.filename!r} has a damaged local header")
        name_len = int.from_bytes(header[26:28], "little")
        extra_len = int.from_bytes(header[28:30], "little")
        self._fh, self._start, self._size, self._pos = fh, info.header_offset + 30 + name_len + extra_len, info.file_size, 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def tell(self) -> int:
        return self._pos

    def seek(self, offset: int, whence: int = 0) -> int:
        base = {0: 0, 1: self._pos, 2: self._size}[whence]
        self._pos = max(0, base + offset)
        return self._pos

    def readinto(self, buf) -> int:
        n = max(0, min(len(buf), self._size - self._pos))
        self._fh.seek(self._start + self._pos)
        data = self._fh.read(n)
        buf[: len(data)] = data
        self._pos += len(data)
        return len(data)


def _check_sizes(infos: list[zipfile.ZipInfo]) -> None:
    if len(infos) > MAX_MEMBERS:
        raise error("QF903", f"archive has {len(infos)} members (limit {MAX_MEMBERS})")
    total = 0
    for info in infos:
        if info.flag_bits & 0x1:
            raise error("QF901", f"archive member {info.filename!r} is encrypted (Keras never encrypts)")
        total += info.file_size
        if info.compress_size and info.file_size / info.compress_size > MAX_RATIO and info.file_size > 1 << 20:
            raise error(
                "QF903",
                f"archive member {info.filename!r} expands {info.file_size // info.compress_size}:1 "
                "(zip bomb guard)",
            )
        if (info.external_attr >> 16) and stat.S_ISLNK(info.external_attr >> 16):
            raise error("QF902", f"archive member {info.filename!r} is a symbolic link")
    if total > MAX_TOTAL_BYTES:
        raise error("QF903", f"archive expands to {total} bytes (limit {MAX_TOTAL_BYTES})")


def _parse_json(raw: bytes, member: str) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"), parse_constant=_refuse_constant, parse_float=_finite_float)
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError, ValueError) as exc:
        raise error("QF904", f"{member} is not valid JSON: {first_line(exc, limit=200)}") from None
    if not isinstance(value, dict):
        raise error("QF904", f"{member} must hold a JSON object, found {type(value).__name__}")
    depth = json_depth(value)
    if depth > MAX_JSON_DEPTH:
        raise error("QF904", f"{member} nests {depth} levels deep (limit {MAX_JSON_DEPTH})")
    return value


def _refuse_constant(name: str) -> Any:
    """NaN/Infinity are not JSON; Keras never writes them into a config."""
    raise ValueError(f"non-standard constant {name}")


def _finite_float(text: str) -> float:
    """A JSON number too large for a double (1e400) would become inf: refuse it."""
    value = float(text)
    if value != value or value in (float("inf"), float("-inf")):
        raise ValueError(f"number {text[:40]} is out of range")
    return value


def json_depth(value: Any) -> int:
    """Nesting depth of a parsed JSON value, computed without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        deepest = max(deepest, depth)
        if depth > MAX_JSON_DEPTH:  # no need to measure further
            return depth
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else ()
        stack.extend((c, depth + 1) for c in children if isinstance(c, (dict, list)))
    return deepest


def check_weights(raw: bytes | IO[bytes], where: str = "model.weights.h5") -> None:
    """An HDF5 file whose superblock h5py accepts (a truncated file fails here: its end-of-file
    address lies past the data) and that references nothing outside itself (`vet.check_hdf5`).
    Reads metadata only. Takes bytes or a seekable member. Raises QF905 or QF902; `where` names
    the file in the message (the archive too: in a folder run it says which model)."""
    import h5py  # h5py only reads the file; it cannot execute anything in it

    from qfix.model.vet import check_hdf5

    fh = io.BytesIO(raw) if isinstance(raw, bytes) else raw
    if fh.read(len(HDF5_MAGIC)) != HDF5_MAGIC:
        raise error("QF905", f"{where} is not an HDF5 file (truncated or corrupt weights)")
    fh.seek(0)
    try:
        with h5py.File(fh, "r") as f:
            check_hdf5(f)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise error("QF905", f"{where} cannot be read (truncated or corrupt): {first_line(exc, limit=200)}") from None


def index_weights(raw: bytes, where: str = "model.weights.h5") -> WeightsIndex:
    import h5py

    idx = WeightsIndex()
    check_weights(raw, where)
    try:
        with h5py.File(io.BytesIO(raw), "r") as f:

            def visit(name: str, obj: Any) -> None:
                if isinstance(obj, h5py.Dataset):
                    idx.variables[name] = tuple(int(d) for d in obj.shape)
                else:
                    idx.groups.add(name)

            f.visititems(visit)
    except (OSError, ValueError, KeyError, RuntimeError, TypeError) as exc:
        raise error("QF905", f"{where} cannot be read (truncated or corrupt): {first_line(exc, limit=200)}") from None
    return idx


def detect_dialect(config: dict[str, Any], metadata: dict[str, Any]) -> str:
    version = str(metadata.get("keras_version", ""))
    module = str(config.get("module", ""))
    if version.startswith("2.") or module.startswith("tf_keras"):
        return "tf_keras"
    return "keras3"


def _not_a_zip(path: Path) -> None:
    """Say what the file is when it is not a .keras zip: a clearer message than 'bad zip'."""
    if path.is_dir():
        if (path / "saved_model.pb").exists():
            raise error(
                "QF906",
                f"{path} is a SavedModel folder; qfix reads .keras files "
                "(load it and save with model.save('model.keras'))",
            )
        raise error("QF906", f"{path} is a folder, not a .keras file")
    with open(path, "rb") as fh:
        head = fh.read(8)
    if head == HDF5_MAGIC:
        raise error(
            "QF906",
            f"{path} is a legacy HDF5 (.h5) model; qfix reads .keras files "
            "(load it and save with model.save('model.keras'))",
        )
    raise error("QF901", f"{path} is not a .keras archive (not a zip file)")


def _check_regular(path: Path) -> None:
    """Only a regular file (a symlink to one is fine) of bounded size is opened: a FIFO blocks
    the reader forever, a device such as /dev/zero never ends."""
    st = os.stat(path)
    if stat.S_ISDIR(st.st_mode):
        _not_a_zip(path)
    if not stat.S_ISREG(st.st_mode):
        raise error("QF901", f"{path} is not a regular file (a pipe, socket or device)")
    if st.st_size > MAX_TOTAL_BYTES:
        raise error("QF903", f"{path} is {st.st_size} bytes (limit {MAX_TOTAL_BYTES})")


def read_archive(path: str | os.PathLike[str]) -> KerasArchive:
    """Open and validate a `.keras` file. Raises QfixError (QF90x) on anything unsafe or broken."""
    path = Path(path)
    try:
        _check_regular(path)
    except FileNotFoundError:
        raise error("QF907", f"{path}: no such file") from None
    except OSError as exc:
        raise error("QF907", f"{path}: cannot read ({exc.strerror or exc})") from None
    if not zipfile.is_zipfile(path):
        _not_a_zip(path)
    try:
        with zipfile.ZipFile(path) as zf:
            infos = zf.infolist()
            for info in infos:
                _check_member_name(info.filename)
            _check_sizes(infos)
            names = {i.filename: i for i in infos}
            missing = [m for m in REQUIRED if m not in names]
            if "config.json" in missing or "metadata.json" in missing:
                raise error("QF901", f"{path} is a zip but not a .keras archive (missing {', '.join(missing)})")
            if "model.weights.h5" in missing:
                raise error("QF905", f"{path} has no model.weights.h5 (weights missing)")
            config = _parse_json(_read_capped(zf, names["config.json"], MAX_JSON_BYTES), "config.json")
            validate_config(config)
            metadata = _parse_json(_read_capped(zf, names["metadata.json"], MAX_JSON_BYTES), "metadata.json")
            winfo = names["model.weights.h5"]
            if winfo.file_size > MAX_WEIGHTS_BYTES:
                raise error("QF903", f"model.weights.h5 is larger than {MAX_WEIGHTS_BYTES} bytes")
            if winfo.compress_type == zipfile.ZIP_STORED:  # how Keras writes it: no copy needed
                with open(path, "rb") as raw:
                    check_weights(_StoredMember(raw, winfo), f"{path}: model.weights.h5")
            else:  # the magic only: inflating to check a header costs the whole member
                with zf.open(winfo) as fh:
                    if fh.read(len(HDF5_MAGIC)) != HDF5_MAGIC:
                        raise error("QF905", f"{path}: model.weights.h5 is not an HDF5 file (truncated or corrupt weights)")
    except zipfile.BadZipFile as exc:
        raise error("QF901", f"{path} is a damaged zip archive: {exc}") from None
    except (zipfile.LargeZipFile, NotImplementedError, EOFError) as exc:
        raise error("QF901", f"{path} cannot be read as a zip archive: {exc}") from None
    except OSError as exc:
        raise error("QF907", f"{path}: cannot read ({exc.strerror or exc})") from None
    return KerasArchive(
        path=path,
        config=config,
        metadata=metadata,
        members=sorted(names),
        dialect=detect_dialect(config, metadata),
    )
