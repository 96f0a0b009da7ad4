"""`qfix targets`: what each target requires, how its verdict is obtained, where its facts
come from. Plain text, one block per target, stable line labels (tests and scripts read it)."""

from __future__ import annotations

from qfix.report.sanitize import printable
from qfix.targets import Profile
from qfix.targets.compilers import measures, verdict_source

PLACEMENT = {
    "prefix": "prefix: the first op off target cuts the graph; it and everything after it run on the CPU",
    "islands": "islands: each op off target runs on the CPU on its own; the others stay on the target",
    "all_or_nothing": "all or nothing: one op off target and the model does not run",
}
MEMORY = {"flash": "flash (the .tflite's size)", "ram": "ram (the tensor arena the runtime needs)"}
LABEL = 11  # width of the line labels


def requires(p: Profile) -> str:
    """The profile's demands in one line: tensor types, I/O, batch, shapes, ranks, op table."""
    tensors = "/".join(p.activation_dtypes) + " tensors"
    if p.aux_dtypes:
        tensors += f" ({'/'.join(p.aux_dtypes)} for shapes and indices)"
    parts = [tensors, f"{p.io_dtype} I/O" if p.io_dtype else "float I/O allowed",
             f"batch {p.batch}" if p.batch else "any batch",
             "static shapes" if p.static_shapes else "dynamic shapes allowed"]
    if p.max_innermost_dims is not None:
        parts.append(f"at most {p.max_innermost_dims} innermost dimensions > 1")
    if p.max_rank is not None:
        parts.append(f"rank {p.max_rank} or less")
    supported = sum(spec.supported for spec in p.ops.values())
    parts.append("any TFLite op (unlisted ones on reference kernels)" if p.unlisted_ops == "reference"
                 else f"the {supported} TFLite ops of its op table")
    return ", ".join(parts)


def render_target(p: Profile, key: str | None = None) -> str:
    """One target's block; `key` is what selects it (`edgetpu`, or a profile's path)."""
    aka = f" (also: {', '.join(p.aliases)})" if p.aliases else ""
    head = f"{printable(key or p.id)}  {printable(p.name)}{aka}" + (f"  [id {p.id}]" if key and key != p.id else "")
    rows = [
        ("requires", requires(p)),
        ("placement", PLACEMENT.get(p.placement, p.placement)),
        ("recipe", p.recipe.description),
        ("memory", "--memory " + ", ".join(MEMORY[k] for k in ("flash", "ram") if k in measures(p))),
        ("verdict", verdict_source(p)),
        ("sources", "; ".join(p.sources) or "-"),
    ]
    return "\n".join([head, *(f"  {label:<{LABEL}}{printable(text)}" for label, text in rows)])


def render_targets(profiles: list[tuple[str | None, Profile]]) -> str:
    return "\n\n".join(render_target(p, key) for key, p in profiles)
