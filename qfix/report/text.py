"""The text report: findings table, placement summary, numbers, verdict."""

from __future__ import annotations

from rich.console import Console
from rich.markup import escape
from rich.table import Table

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
            done = "applied " if v.applied else ""
            text += f"\n[cyan]→ {done}fix \\[{v.fix.applicability.value}]:[/] {escape(v.fix.description)}"
        sev = v.severity.value
        table.add_row(v.code, f"[{_SEV_STYLE[sev]}]{sev}[/]", escape(v.location.layer or "-"), text)
    return table


def render_check(result, console: Console) -> None:
    a, p = result.archive, result.profile
    console.print(
        f"[bold]qfix[/] {result.path} · {a.dialect} (keras {a.keras_version}) · "
        f"target [bold]{p.id}[/] ({p.name}) · {len(list(result.graph.walk()))} layers"
    )
    if result.findings:
        console.print(findings_table(result.findings))
    else:
        console.print("[green]no findings[/]")
    ver = result.verification
    if ver is None:
        if result.not_converted:
            console.print(f"[yellow]{result.not_converted}[/]")
        return
    render_verification(ver, console)
    render_verdict(result.exit_code(), p, console)


def render_verification(ver, console: Console, title: str = "placement") -> None:
    pl = ver.placement
    console.print(
        f"[bold]{title}:[/] {pl.ops_on_target}/{pl.ops_total} ops on target, "
        f"{len(pl.float_tensors)} float tensor(s), converted in {ver.convert_seconds:.1f}s"
    )
    if pl.first_unsupported:
        f = pl.first_unsupported
        console.print(
            f"  first unsupported: [bold]{f['op']}[/] (op {f['index']}) from layer [bold]{f['layer']}[/] — "
            f"{f.get('status') or ''}: {f['reason']}"
        )
    for w in pl.warnings:
        console.print(f"  [yellow]warning:[/] {w}")
    if ver.compiler and ver.compiler.get("used") == "edgetpu_compiler":
        dis = ver.compiler.get("disagreements") or []
        console.print(f"  edgetpu_compiler ran: {len(dis)} disagreement(s) with the profile")
        for d in dis:
            console.print(f"    {d}")
    fid = ver.fidelity
    if fid is not None:
        top1 = "n/a" if fid.top1_agreement is None else f"{fid.top1_agreement * 100:.1f}%"
        label = "synthetic data" if fid.synthetic else ver.calibration_source
        console.print(
            f"[bold]numbers[/] ({fid.samples} samples, {label}): SQNR {fid.sqnr_db:.1f} dB, "
            f"max abs error {fid.max_abs_error:.4g}, top-1 agreement {top1}"
        )


def render_verdict(code: int, profile, console: Console) -> None:
    if code == 0:
        console.print(f"[bold green]runs fully on {profile.name}[/]")
    else:
        console.print(f"[bold red]blockers remain for {profile.name}[/]")
