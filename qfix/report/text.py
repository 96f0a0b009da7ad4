"""The text report: findings table, placement summary, numbers, verdict."""

from __future__ import annotations

import math

from rich.console import Console
from rich.markup import escape as _markup_escape
from rich.table import Table

from qfix.report.sanitize import printable
from qfix.targets.check import from_layer
from qfix.targets.memory import format_bytes
from qfix.types import Applicability

ZERO_SIGNAL = "QF408"
# QF408's floor, 2 effective bits (qfix.rules.zero_signal.MIN_SQNR_DB; the report may not import rules)
SIGNAL_DB = 1.76 + 6.02 * 2


def unsafe_fixes_left(findings) -> list[str]:
    """Codes of findings still open whose fix qfix could apply with --unsafe-fixes."""
    return sorted({v.code for v in findings if not v.applied and v.fix is not None and v.fix.edits
                   and v.fix.applicability is Applicability.UNSAFE})


MAX_FIELD = 2000  # characters of one value from a file (a layer name, a message quoting it)
MAX_FALLBACK = 12  # ops listed as leaving the target in the text report (JSON has them all)


def escape(text: object) -> str:
    """Text from a file, ready for a rich markup string: control characters escaped (no
    terminal sequence gets through) and markup brackets neutralised."""
    return _markup_escape(printable(text, limit=MAX_FIELD))

_SEV_STYLE = {"blocker": "bold red", "warning": "yellow", "info": "cyan"}


def findings_table(findings) -> Table:
    table = Table(show_header=True, header_style="bold", expand=False, show_lines=False)
    table.add_column("code", no_wrap=True)
    table.add_column("severity", no_wrap=True)
    table.add_column("layer", overflow="fold", max_width=28)
    table.add_column("finding", overflow="fold")
    for v in findings:
        text = f"{escape(v.message)} [dim]({v.name})[/]"
        if v.fix is not None:
            # Its first line: a code template after it (QF510) is printed below the table.
            advice = escape(v.fix.description.split("\n", 1)[0])
            if v.applied and not v.fix.edits:  # gone from the fixed model through another finding's fix
                text += f"\n[cyan]→ resolved by another fix; its own advice was:[/] {advice}"
            else:
                done = "applied " if v.applied else ""
                text += f"\n[cyan]→ {done}fix \\[{v.fix.applicability.value}]:[/] {advice}"
        sev = v.severity.value
        table.add_row(v.code, f"[{_SEV_STYLE[sev]}]{sev}[/]", escape(v.location.layer or "-"), text)
    return table


def render_check(result, console: Console) -> None:
    p = result.profile
    render_header(result, console)
    if result.findings:
        console.print(findings_table(result.findings))
    else:
        console.print("[green]no findings[/]")
    ver = result.verification
    if ver is None:
        if result.not_converted:
            console.print(f"[yellow]{escape(result.not_converted)}[/]")
            render_unsafe_hint(unsafe_fixes_left(result.findings), console)
        return
    render_verification(ver, console)
    render_memory(result, console)
    render_inputs(result, console)
    render_verdict(result, console)
    render_unsafe_hint(unsafe_fixes_left(result.findings), console)


def render_recipe(ver, console: Console) -> None:
    """The quantization scheme is the target's, whatever the model's author used before."""
    data = "synthetic calibration data" if ver.fidelity and ver.fidelity.synthetic else escape(ver.calibration_source)
    console.print(f"[bold]recipe:[/] {escape(ver.recipe)}, {data} — replaces the converter's defaults "
                  "(float ops and I/O; dynamic-range weights with Optimize.DEFAULT alone)")


def render_verification(ver, console: Console, title: str = "placement") -> None:
    pl = ver.placement
    render_recipe(ver, console)
    # Float tensors are islands only in an integer model: a float16 target computes in float.
    floats = f"{len(pl.float_tensors)} float tensor(s), " if getattr(pl, "integer", True) else ""
    console.print(
        f"[bold]{title}:[/] {pl.ops_on_target}/{pl.ops_total} ops on target, "
        f"{floats}converted in {ver.convert_seconds:.1f}s"
    )
    # An islands target cuts nothing: its ops off target are listed below (fallback), not a cut.
    islands = getattr(pl, "spread", "prefix") == "islands" and getattr(pl, "fallback", [])
    if pl.first_unsupported and not islands:
        f = pl.first_unsupported
        console.print(
            f"  first unsupported: [bold]{escape(f['op'])}[/] (op {f['index']}) {escape(from_layer(f['layer']))} — "
            f"{escape(f.get('status') or '')}: {escape(f['reason'])}"
        )
    for f in getattr(pl, "fallback", [])[:MAX_FALLBACK]:  # islands: each op the target leaves out
        console.print(f"  {escape(f['status'])}: [bold]{escape(f['op'])}[/] (op {f['index']}) "
                      f"{escape(from_layer(f['layer']))} — {escape(f['reason'])}")
    if len(getattr(pl, "fallback", [])) > MAX_FALLBACK:
        console.print(f"  ... and {len(pl.fallback) - MAX_FALLBACK} more op(s) (--format json lists them all)")
    render_warnings(ver, console)
    if ver.compiler and ver.compiler.get("used", "profile") != "profile":  # a real compiler ran
        used = ver.compiler["used"]
        if ver.compiler.get("summary"):
            console.print(f"  {escape(ver.compiler['summary'])}")
        dis = ver.compiler.get("disagreements") or []
        if ver.compiler.get("kind") == "runtime":
            render_runtime(ver.compiler, console)
        whose = f"; the placement above is {used}'s" if ver.compiler.get("verdict") == used else ""
        result = ver.compiler.get("result") or {}
        if result.get("ok", True) or result.get("rejected"):
            console.print(f"  {used} ran: {len(dis)} disagreement(s) with the profile{whose}")
        else:  # a crash, a time-out, a bad configuration: it placed nothing (the summary says why)
            console.print(f"  {used} did not finish; the placement above is the profile's")
        for d in dis:
            console.print(f"    {escape(d)}")
    fid = ver.fidelity
    if fid is not None:
        top1 = "n/a" if fid.top1_agreement is None else f"{fid.top1_agreement * 100:.1f}%"
        label = "synthetic data" if fid.synthetic else ver.calibration_source
        console.print(
            f"[bold]numbers[/] ({fid.samples} sample{'s' if fid.samples != 1 else ''}, {label}): SQNR {fid.sqnr_db:.1f} dB, "
            f"max abs error {fid.max_abs_error:.4g}, top-1 agreement {top1}"
        )
        # An output's constant offset (a bias of 1000) inflates the SQNR: show the varying part's
        # when it is more than 1 bit (6 dB) below, per output when there are several.
        _render_varying(fid, console)


def _varying(fid) -> list[tuple[str, float]]:
    """Outputs whose varying part's SQNR is over 1 bit (6 dB) below their SQNR: a constant
    offset (a bias of 1000) inflates the SQNR, not this one."""
    return [(o.name, o.sqnr_ac_db) for o in fid.per_output
            if o.sqnr_ac_db is not None and o.sqnr_db - o.sqnr_ac_db > 6.0]


def _render_varying(fid, console: Console) -> None:
    ac = _varying(fid)
    if ac:
        parts = ", ".join(f"{escape(n)} {v:.1f} dB" if len(fid.per_output) > 1 else f"{v:.1f} dB" for n, v in ac)
        console.print(f"  SQNR of the varying part (output less its mean over the samples): {parts}")


def _worst_varying(fid, below: float = math.inf) -> str:
    """For the last line, only when the SQNR reads as a signal (at or above QF408's 13.8 dB)
    while an output's varying part does not; only varying parts below `below` dB."""
    ac = [(n, v) for n, v in (_varying(fid) if fid is not None and fid.sqnr_db >= SIGNAL_DB else []) if v < below]
    if not ac:
        return ""
    n, v = min(ac, key=lambda x: x[1])
    return f"; {escape(n)}, varying part: {v:.1f} dB" if len(fid.per_output) > 1 else f"; varying part {v:.1f} dB"


def render_runtime(compiler: dict, console: Console) -> None:
    """The target's real runtime (the TFLM interpreter): did it run the model, do its outputs
    match LiteRT's, and the tensor arena it needed."""
    r, name = compiler.get("result") or {}, escape(compiler.get("used"))
    if r.get("skipped"):
        console.print(f"  {name} interpreter not run: {escape(r['skipped'])}")
        return
    if not r.get("ok"):
        console.print(f"  [bold red]{name} interpreter cannot run the model:[/] {escape(r.get('error'))}")
        return
    steps = "" if r.get("max_diff_steps") is None else f", max {r['max_diff_steps']} step(s) apart"
    verdict = ("[green]match LiteRT[/] (within one quantization step)" if not r.get("beyond_one_step") else
               f"[yellow]differ from LiteRT[/]: {r['beyond_one_step']} value(s) more than one step apart")
    console.print(f"  {name} interpreter ran {r.get('samples')} sample{'s' if r.get('samples') != 1 else ''}: "
                  f"outputs {verdict}; "
                  f"{r.get('differing')} of {r.get('values')} values differ{steps}")
    ref = r.get("reference_kernels") or {}
    if ref.get("error"):
        console.print(f"    vs LiteRT's reference kernels: not run ({escape(ref['error'])})")
    elif ref.get("values") and (r.get("differing") or ref.get("differing")):
        apart = "" if ref.get("max_diff_steps") is None else f", max {ref['max_diff_steps']} step(s) apart"
        console.print(f"    vs LiteRT's reference kernels: {ref.get('differing')} of {ref.get('values')} values "
                      f"differ{apart}")
    outputs = r.get("outputs") or []
    if len(outputs) > 1:  # which output the differences are in
        for o in outputs:
            apart = "" if o.get("max_diff_steps") is None else f", max {o['max_diff_steps']} step(s) apart"
            console.print(f"    output {escape(str(o.get('name')))}: {o.get('differing')} of {o.get('values')} "
                          f"values differ{apart}")
    arena, recorded = r.get("arena_bytes"), r.get("arena_recorded")
    size = (f"{format_bytes(arena)} ({arena:,} bytes, the least it ran in" if arena is not None
            else "not measured (no arena up to the largest tried ran it" )
    size += f"; TFLM records {recorded:,} bytes used)" if recorded is not None else ")"
    console.print(f"  tensor arena {size}, model {format_bytes(r.get('model_bytes'))} "
                  f"({r.get('model_bytes'):,} bytes)")


def render_memory(result, console: Console) -> None:
    """The --memory budget against what the run measured (shown with a budget, or when the
    target's runtime measured RAM)."""
    ver, budget = result.verification, result.budget
    measured = getattr(ver, "memory", None) or {}
    if ver is None or (budget is None and "ram" not in measured):
        return
    parts = []
    for kind in ("flash", "ram"):
        got, limit = measured.get(kind), getattr(budget, kind, None) if budget else None
        if got is None and limit is None:
            continue
        text = f"{kind} {format_bytes(got['bytes']) if got else 'not measured'}"
        if got and got.get("what"):  # whose figure (Vela's output .tflite, its SRAM estimate, ...): short
            text += f" ({escape(got['what'].split(' (')[0])})"
        if limit is not None:
            fits = got is not None and got["bytes"] <= limit
            text += f" of {format_bytes(limit)} " + ("[green]fits[/]" if fits else "[bold red]does not fit[/]"
                                                      if got else "[yellow]unchecked[/]")
        parts.append(text)
    console.print(f"[bold]memory:[/] {'; '.join(parts)}")


def render_verdict(result, console: Console) -> None:
    """The last line: it follows the proof (exit status 0 or 1) and says why not a success."""
    name = escape(result.profile.name)
    note = result.profile.toolchain.get("note")
    # A verdict no real tool can check here says so (the GPU delegate: no GPU on this machine).
    how = f" [dim](by the profile only: {escape(note)})[/]" if note else ""
    if result.exit_code() == 0:
        # a success whose output keeps under QF408's floor of its variation says which (README)
        weak = _worst_varying(result.verification.fidelity if result.verification else None, below=SIGNAL_DB)
        console.print(f"[bold green]runs fully on {name}[/]{how}" + (f"[yellow]{weak}[/]" if weak else ""))
        return
    ver = result.verification
    silent = [v for v in result.blockers if v.code == ZERO_SIGNAL]
    if ver is not None and ver.placement.fully_on_target and silent:
        console.print(f"[bold red]runs op by op on {name}, but its int8 outputs carry no signal "
                      f"(SQNR {ver.fidelity.sqnr_db:.1f} dB{_worst_varying(ver.fidelity)}, {ZERO_SIGNAL}): "
                      "not a success[/]")
    else:
        console.print(f"[bold red]blockers remain for {name}[/]{how}")


def render_unsafe_hint(codes: list[str], console: Console) -> None:
    if codes:
        console.print(f"[cyan]hint:[/] {', '.join(codes)} can be fixed only with --unsafe-fixes (the fix "
                      "changes numbers or the interface; the report gives the float delta)")


def render_inputs(result, console: Console) -> None:
    """Each input's quantization in the .tflite, shown when the inputs differ in kind
    (integer beside float): that is where one input's precision can be lost (QF409)."""
    rows = result.input_quantization or []
    if len({r["kind"] for r in rows}) < 2:
        return
    console.print("[bold]inputs[/] (quantization in the .tflite):")
    for r in rows:
        if r["scale"]:
            q = f"scale {r['scale']:.4g}, zero point {r['zero_point']}"
            if r["kind"] == "integer" and (r["scale"], r["zero_point"]) != (1.0, 0):
                q += " (not raw values: feed round(x / scale) + zero point)"
            lv = "" if r["levels"] is None else f", {r['levels']:.0f} levels over it"
        else:
            q, lv = "fed raw (not quantized)", ""
        console.print(f"  {escape(r['name'])}: {r['dtype']} → {r['tflite_dtype']}, {q}; calibration range "
                      f"{r['range'][0]:.4g}..{r['range'][1]:.4g}{lv}")


def render_fix(run, console: Console) -> None:
    """The main job's report: findings (with what was applied), before/after, outputs."""
    result = run.result
    render_header(result, console)
    if result.findings:
        console.print(findings_table(result.findings))
    if run.fixes:
        console.print("[bold]rewrites:[/]")
        for f in run.fixes:
            if not f.rolled_back:
                # a rewrite that removes code loading would run earns its place without the check
                state = "[green]kept[/]" + (" (the written model loads without --trust-lambdas)" if f.removes_code else "")
            elif f.no_effect:
                state = f"[yellow]no effect[/], rolled back ({escape(f.reason or '')})"
            else:
                state = f"[red]rolled back[/] ({escape(f.reason or '')})"
            console.print(f"  {f.code} {escape(f.layer or '-')}: {escape(f.note)} \\[{f.applicability}] — {state}")
    for s in run.skipped:
        console.print(f"  [yellow]not applied:[/] {escape(s)}")
    if result.verification is None:
        if result.not_converted:
            console.print(f"[yellow]{escape(result.not_converted)}[/]")
            # a model that converts only with an unsafe fix (QF107's wrapping Add) says so here too
            render_unsafe_hint([] if run.unsafe else unsafe_fixes_left(result.findings), console)
        return
    if run.before is not None and run.active:
        render_before_after(run, console)
    elif run.before_failure and run.active:
        console.print(f"[bold]before:[/] the original model does not convert: {escape(run.before_failure)}")
        console.print("[bold]after:[/]")
        render_verification(result.verification, console)
    else:
        render_verification(result.verification, console)
    if run.float_reference_failure and run.active:
        console.print("[bold]float equivalence:[/] not measured: the original model does not run in TensorFlow "
                      f"({escape(run.float_reference_failure)})")
    if run.float_equivalence is not None:
        unsafe = any(f.applicability == "unsafe" for f in run.active)
        label = "float delta of the unsafe fixes" if unsafe else "float equivalence (fixed vs original)"
        console.print(f"[bold]{label}:[/] max abs diff {run.float_equivalence:.3g} on "
                      f"{result.verification.fidelity.samples} samples (safe tolerance {run.tolerance:.3g})")
    render_memory(result, console)
    render_inputs(result, console)
    if run.batch_note:
        console.print(f"[bold]batch:[/] {escape(run.batch_note)}")
    if run.outputs.get("model"):
        console.print(f"wrote {escape(run.outputs['model'])}")
    elif run.outputs.get("tflite"):
        earlier = " (the file there is from an earlier run, not this .tflite's model)" if run.stale_model else ""
        console.print(f"no rewrite kept: {escape(run.not_written)} not written{earlier}")
    if run.outputs.get("tflite"):
        console.print(f"wrote {escape(run.outputs['tflite'])}")
    if run.outputs.get("compiled"):
        console.print(f"wrote {escape(run.outputs['compiled'])} (compiled by "
                      f"{escape(str((result.verification.compiler or {}).get('used', 'the target compiler')))}: "
                      "the file the device runs)")
    render_verdict(result, console)
    render_unsafe_hint([] if run.unsafe else unsafe_fixes_left(result.findings), console)


def render_header(result, console: Console) -> None:
    a, p = result.archive, result.profile
    now = len(list(result.graph.walk()))
    layers = f"{now} layers" if result.input_layers in (None, now) else f"{result.input_layers} layers ({now} after the fixes)"
    console.print(
        f"[bold]qfix[/] {escape(str(result.path))} · {a.dialect} (keras {a.keras_version}) · "
        f"target [bold]{escape(p.id)}[/] ({escape(p.name)}) · {layers}"
    )


def render_warnings(ver, console: Console) -> None:
    """The placement's warnings (limits not known to hold, kernels that run slowly, ...) and the
    output order, under whichever placement view printed the model's ops on target."""
    for w in ver.placement.warnings:
        console.print(f"  [yellow]warning:[/] {escape(w)}")
    if ver.outputs and not ver.outputs_in_model_order:  # index-based runtimes read the wrong head
        order = ", ".join(f"{o['index']}={o['layer'] or o['name']}" for o in ver.outputs)
        console.print(f"  [yellow]warning:[/] the .tflite's outputs are not in the model's order: {escape(order)}")


def render_before_after(run, console: Console) -> None:
    b, a = run.before, run.result.verification
    render_recipe(a, console)
    table = Table(show_header=True, header_style="bold")
    table.add_column("")
    table.add_column("before")
    table.add_column("after")

    def cut(v):
        f = v.placement.first_unsupported
        return "-" if not f else f"{f['op']} ({printable(f['layer']) if f['layer'] is not None else 'no layer'})"

    rows = [
        ("ops on target", f"{b.placement.ops_on_target}/{b.placement.ops_total}", f"{a.placement.ops_on_target}/{a.placement.ops_total}"),
        ("fully on target", str(b.placement.fully_on_target), str(a.placement.fully_on_target)),
        ("first unsupported", cut(b), cut(a)),
        ("float tensors", str(len(b.placement.float_tensors)), str(len(a.placement.float_tensors))),
        ("int8 SQNR (dB)", f"{b.fidelity.sqnr_db:.1f}", f"{a.fidelity.sqnr_db:.1f}"),
        ("max abs error", f"{b.fidelity.max_abs_error:.4g}", f"{a.fidelity.max_abs_error:.4g}"),
    ]
    rows += compiler_rows(b, a)
    for row in rows:
        table.add_row(*(escape(x) for x in row))
    console.print(table)
    label = "synthetic data" if a.fidelity.synthetic else a.calibration_source
    console.print(f"numbers on {a.fidelity.samples} samples ({escape(label)})")
    _render_varying(a.fidelity, console)
    render_warnings(a, console)  # the table has no room for them; "fully on target" can carry one
    if a.compiler and a.compiler.get("kind") == "runtime":  # the fixed model, in the target's runtime
        render_runtime(a.compiler, console)


def compiler_rows(before, after) -> list[tuple[str, str, str]]:
    """Before/after rows of the real compiler's estimates, when it ran on both (Vela)."""
    def est(v):
        c = v.compiler or {}
        return (c.get("result") or {}).get("estimates") or {}

    b, a = est(before), est(after)
    if not b or not a:
        return []
    name = after.compiler["used"]
    kib = lambda n: f"{n / 1024:.1f} KiB"  # noqa: E731
    return [(f"cycles ({name})", str(b["cycles_total"]), str(a["cycles_total"])),
            (f"SRAM ({name})", kib(b["sram_bytes"]), kib(a["sram_bytes"])),
            (f"flash + DRAM ({name})", kib(b["flash_bytes"] + b["dram_bytes"]), kib(a["flash_bytes"] + a["dram_bytes"]))]
