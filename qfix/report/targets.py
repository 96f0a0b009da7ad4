"""`qfix targets`: what each target requires, how its verdict is obtained, where its facts
come from. Plain text, one block per target, stable line labels (tests and scripts read it);
a target named on the command line also gets its op table. `--format json`: `target_json`."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from qfix.report.sanitize import printable
from qfix.targets import Profile
from qfix.targets.compilers import find, measures, verdict_source
from qfix.targets.variants import macs_of

PLACEMENT = {
    "prefix": "prefix: the first op off target cuts the graph; it and everything after it run on the CPU",
    "islands": "islands: each op off target runs on the CPU on its own; the others stay on the target",
    "all_or_nothing": "all or nothing: one op off target and the model does not run",
}
MEMORY = {"flash": "the .tflite's size", "ram": "the tensor arena the runtime needs"}
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


def memory_text(p: Profile) -> str:
    """What each --memory budget is checked against for `p`: the compiler module's own words
    (`MEMORY_TEXT`: Vela's output and SRAM estimate, TFLM's arena), else MEMORY."""
    words = {**MEMORY, **getattr(find(p), "MEMORY_TEXT", {})}
    return ", ".join(f"{k} ({words[k]})" for k in ("flash", "ram") if k in measures(p))


def canonical(p: Profile, key: str | None) -> str:
    """What names the target: its id (not the user's spelling or alias), with `:N` when a MAC
    configuration was asked for (`ethos-u55:128`)."""
    config = p.toolchain.get("accelerator_config")
    if key and ":" in key and not _is_path(key) and config:
        return f"{p.id}:{macs_of(str(config))}"
    return p.id


def _is_path(key: str) -> bool:
    return key.endswith(".toml") or "/" in key or Path(key).exists()


def variants(p: Profile) -> list[str]:
    """`--target` spellings of the profile's MAC configurations (`ethos-u55:32`, ...)."""
    return [f"{p.id}:{macs_of(str(c))}" for c in p.toolchain.get("accelerator_configs") or []]


def render_target(p: Profile, key: str | None = None, ops: bool = False) -> str:
    """One target's block; `key` is what selects it (`edgetpu`, `CORAL`, or a profile's path);
    `ops`: add the op table."""
    aka = f" (also: {', '.join(p.aliases)})" if p.aliases else ""
    head = f"{printable(canonical(p, key))}  {printable(p.name)}{aka}"
    if key and _is_path(key):
        head += f"  [profile {printable(key)}]"
    rows = [
        ("requires", requires(p)),
        ("placement", PLACEMENT.get(p.placement, p.placement)),
        ("recipe", p.recipe.description),
        ("memory", "--memory " + memory_text(p)),
        ("verdict", verdict_source(p)),
        ("sources", "; ".join(p.sources) or "-"),
    ]
    if variants(p):
        rows.append(("variants", ", ".join(variants(p)) + " (MACs per cycle)"))
    lines = [head, *(f"  {label:<{LABEL}}{printable(text)}" for label, text in rows)]
    if ops:
        lines += op_table(p)
    return "\n".join(lines)


def op_table(p: Profile) -> list[str]:
    """The op table, one line per op (by name), then its rules indented: what the op-by-op
    check holds each converted op to."""
    unlisted = "on reference kernels" if p.unlisted_ops == "reference" else "off target"
    out = [f"  {'ops':<{LABEL}}{len(p.ops)} listed; an op not listed is {unlisted}"]
    width = max((len(n) for n in p.ops), default=0)
    for name in sorted(p.ops):
        spec = p.ops[name]
        state = "yes" if spec.supported else "no"
        if spec.supported and spec.kernel == "reference":
            state = "yes (reference kernel)"
        extra = f", max v{spec.max_version}" if spec.max_version is not None else ""
        hint = f" — {spec.fix_hint}" if spec.fix_hint and not spec.supported else ""
        out.append(printable(f"    {name:<{width}}  {state}{extra}  [{spec.confidence}] {spec.source}{hint}"))
        for r in spec.constraints:
            sev = "" if r.severity == "blocker" else f" ({r.severity})"
            out.append(printable(f"    {'':<{width}}    - {r.text}{sev}"))
    return out


def target_json(p: Profile, key: str | None = None) -> dict[str, Any]:
    """One target for `qfix targets --format json` (its keys are documented in README.md,
    "qfix targets --format json")."""
    return {
        "id": canonical(p, key),
        "name": p.name,
        "aliases": list(p.aliases),
        "profile": key if key and _is_path(key) else None,
        "requires": requires(p),
        "placement": p.placement,
        "recipe": {"quantization": p.recipe.quantization, "io_dtype": p.recipe.io_dtype, "batch": p.recipe.batch,
                   "supported_ops": list(p.recipe.supported_ops), "description": p.recipe.description},
        "memory": sorted(measures(p)),
        "verdict_source": verdict_source(p),
        "toolchain": p.toolchain.get("name"),
        "accelerator_config": p.toolchain.get("accelerator_config"),
        "variants": variants(p),
        "sources": list(p.sources),
        "unlisted_ops": p.unlisted_ops,
        "ops": [
            {"op": name, "code": spec.code, "supported": spec.supported, "kernel": spec.kernel,
             "max_version": spec.max_version, "source": spec.source, "confidence": spec.confidence,
             "fix_hint": spec.fix_hint,
             "rules": [{"predicate": r.predicate, "args": r.args, "text": r.text, "severity": r.severity,
                        "source": r.source, "confidence": r.confidence} for r in spec.constraints]}
            for name, spec in sorted(p.ops.items())
        ],
    }


def render_targets(profiles: list[tuple[str | None, Profile]], ops: bool = False) -> str:
    return "\n\n".join(render_target(p, key, ops) for key, p in profiles)
