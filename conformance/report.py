"""Suite output: the JSON of every case, a Markdown report with plots, and terminal tables.

Scores: each metric's value divided by its threshold, so 1 is the pass/fail line for every
metric and op; a group's score is the worst (largest) over its cases.
"""

import json
import math
from collections import defaultdict
from pathlib import Path

from conformance.runner import Record, SuiteResult

try:  # rich and matplotlib are test extras; without them the suite still runs and reports
    import rich  # noqa: F401

    HAVE_RICH = True
except ImportError:  # pragma: no cover - exercised on bare GPU machines
    HAVE_RICH = False
try:
    import matplotlib  # noqa: F401

    HAVE_MPL = True
except ImportError:  # pragma: no cover
    HAVE_MPL = False


class _PlainConsole:
    """The slice of rich.Console the CLI uses, as plain prints (markup stripped)."""

    def print(self, *args) -> None:
        import re

        print(*(re.sub(r"\[/?[a-z ]+\]", "", str(a)) for a in args), flush=True)


def console():
    """A rich Console, or a plain stand-in when rich is not installed."""
    if HAVE_RICH:
        from rich.console import Console

        return Console()
    return _PlainConsole()

PLOT_OPS = ("solve", "inv", "lstsq", "qr", "eigh", "svd", "cholesky", "eig")


def groups(records: list[Record], *keys: str) -> dict[tuple, list[Record]]:
    """Records grouped by the named attributes, in first-seen order."""
    out: dict[tuple, list[Record]] = defaultdict(list)
    for r in records:
        out[tuple(getattr(r, k) for k in keys)].append(r)
    return out


def worst_of(records: list[Record]) -> tuple[float, str, Record | None]:
    """(worst score, "metric (case)", record) over records; errors count as inf."""
    best = (-1.0, "", None)
    for r in records:
        if r.error is not None and not r.metrics:
            return math.inf, f"error ({r.case})", r
        w = r.worst
        if w is not None and w.score > best[0]:
            best = (w.score, f"{w.name} ({r.case})", r)
    return best if best[0] >= 0 else (0.0, "", None)


def summary(result: SuiteResult) -> dict:
    recs = result.records
    table = {}
    for (op, dtype, cls), rs in groups(recs, "op", "dtype", "cls").items():
        score, what, _ = worst_of(rs)
        table[f"{op}|{dtype}|{cls}"] = {
            "op": op, "dtype": dtype, "class": cls, "cases": len(rs),
            "failures": sum(not r.passed for r in rs),
            "worst_score": score if math.isfinite(score) else "inf", "worst": what,
        }
    return {
        "cases": len(recs),
        "failures": len(result.failures),
        "passed": result.passed,
        "groups": table,
    }


def write_json(result: SuiteResult, path: Path) -> Path:
    data = {"meta": result.meta, "summary": summary(result),
            "cases": [r.to_json() for r in result.records]}
    path.write_text(json.dumps(data, indent=1, default=str))
    return path


# ----------------------------------------------------------------------------- plots


def _score(r: Record) -> float:
    w = r.worst
    if r.error is not None and w is None:
        return math.inf
    return w.score if w is not None else 0.0


def plot_scores(result: SuiteResult, path: Path) -> Path | None:
    """Strip plot: the worst score of every case, per op (log scale, pass line at 1)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import numpy as np

    by_op = groups([r for r in result.records if r.policy is None], "op")
    if not by_op:
        return None
    names = [k[0] for k in by_op]
    fig, ax = plt.subplots(figsize=(max(8, 0.22 * len(names)), 4.5))
    rng = np.random.default_rng(0)
    for i, name in enumerate(names):
        s = np.array([_score(r) for r in by_op[(name,)]], float)
        s = np.clip(np.where(np.isfinite(s), s, 1e6), 1e-6, 1e6)
        colors = np.where(s > 1, "tab:red", "tab:blue")
        ax.scatter(i + rng.uniform(-0.25, 0.25, s.size), s, s=6, c=colors, alpha=0.6)
    ax.axhline(1.0, color="k", lw=0.8, ls="--")
    ax.set_yscale("log")
    ax.set_xticks(range(len(names)), names, rotation=90, fontsize=6)
    ax.set_ylabel("worst metric / threshold")
    ax.set_title("Metric distribution per op (each dot one case; above 1 fails)")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


def plot_forward_vs_cond(result: SuiteResult, dtype: str, path: Path) -> Path | None:
    """Forward error vs condition number, mlx_linalg next to SciPy at the same precision."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    for op in PLOT_OPS:
        pts = []
        for r in result.records:
            if r.op != op or r.dtype != dtype or r.policy or not r.cond or r.cond == math.inf:
                continue
            for m in r.metrics:
                if m.kind == "forward" and m.error is not None and m.peer_error is not None:
                    pts.append((r.cond, m.error, m.peer_error, m.name))
                    break
        if pts:
            panels.append((op, pts))
    if not panels:
        return None
    cols = min(4, len(panels))
    rows = -(-len(panels) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.6 * cols, 3.2 * rows), squeeze=False)
    from matplotlib.ticker import LogLocator, NullFormatter

    from conformance.zoo import UNIT_ROUNDOFF

    peer_label = "SciPy float64 (perturbed 4u)" if dtype == "float64" else f"SciPy {dtype}"
    u = UNIT_ROUNDOFF.get(dtype, 2.0**-24)
    for ax, (op, pts) in zip(axes.flat, panels, strict=False):
        k = [p[0] for p in pts]
        zeros = sum(p[1] == 0 for p in pts)
        ax.scatter([p[0] for p in pts if p[2] > 0], [p[2] for p in pts if p[2] > 0], s=14,
                   marker="o", facecolors="none", edgecolors="tab:gray", label=peer_label)
        ax.scatter([p[0] for p in pts if p[1] > 0], [p[1] for p in pts if p[1] > 0], s=8,
                   c="tab:blue", label="mlx_linalg")
        lo, hi = min(k) / 2, max(k) * 2
        ax.plot([lo, hi], [u * lo, u * hi], "k:", lw=0.7, label="κ·u")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlim(lo, hi)
        ys = [y for p in pts for y in (p[1], p[2]) if y > 0]
        if ys:
            ax.set_ylim(min(ys) / 3, max(min(max(ys) * 3, 10.0), 10 * u))
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(LogLocator(numticks=6))
            axis.set_minor_formatter(NullFormatter())
        extra = f", {zeros} exact (not shown)" if zeros else ""
        ax.set_title(f"{op}: {pts[0][3]}{extra}", fontsize=8)
        ax.set_xlabel("κ₂(A)", fontsize=7)
        ax.set_ylabel("‖X − X_ref‖/‖X_ref‖", fontsize=7)
        ax.tick_params(labelsize=6)
    for ax in list(axes.flat)[len(panels):]:
        ax.axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.suptitle(f"Forward error vs condition number ({dtype})", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path


# ----------------------------------------------------------------------------- markdown


def _fmt(x: float) -> str:
    if x is None:
        return "-"
    if isinstance(x, str):
        return x
    if not math.isfinite(x):
        return str(x)
    return f"{x:.3g}"


def markdown(result: SuiteResult, plots: list[Path], failures_shown: int = 200) -> str:
    meta, recs = result.meta, result.records
    dtypes = list(dict.fromkeys(r.dtype for r in recs))
    lines = [
        "# mlx_linalg conformance report",
        "",
        f"Tier **{meta['tier']}** on device **{meta['device']}**, machine {meta['machine']}, "
        f"started {meta['started']}, {meta['seconds']} s. mlx {meta['mlx']}, "
        f"mlx_linalg {meta['mlx_linalg']}, NumPy {meta['numpy']}, SciPy {meta.get('scipy')}.",
        "",
        f"**{len(recs)} cases, {len(result.failures)} failing: "
        f"{'PASS' if result.passed else 'FAIL'}.**",
        "",
        "Cells: worst metric / threshold over the cases of that op and dtype (≤ 1 passes), "
        "then failing cases / cases. Definitions: docs/conformance.md.",
        "",
        "| op | " + " | ".join(dtypes) + " |",
        "| --- | " + " | ".join("---" for _ in dtypes) + " |",
    ]
    by = groups(recs, "op", "dtype")
    for op in dict.fromkeys(r.op for r in recs):
        cells = []
        for d in dtypes:
            rs = by.get((op, d))
            if not rs:
                cells.append("")
                continue
            score, _, _ = worst_of(rs)
            fails = sum(not r.passed for r in rs)
            mark = "❌" if fails else "✅"
            cells.append(f"{mark} {_fmt(score)} ({fails}/{len(rs)})")
        lines.append(f"| {op} | " + " | ".join(cells) + " |")
    lines += ["", "## Plots", ""]
    lines += [f"![{p.stem}]({p.name})" for p in plots]
    fail_groups = [(k, rs) for k, rs in groups(recs, "op", "dtype", "cls").items()
                   if any(not r.passed for r in rs)]
    lines += ["", f"## Failing groups (op × dtype × class): {len(fail_groups)}", ""]
    if fail_groups:
        lines += ["| op | dtype | class | failing | worst metric (case) | score |",
                  "| --- | --- | --- | --- | --- | --- |"]
        for (op, d, cls), rs in fail_groups:
            score, what, _ = worst_of(rs)
            lines.append(f"| {op} | {d} | {cls} | {sum(not r.passed for r in rs)}/{len(rs)} "
                         f"| {what} | {_fmt(score)} |")
    lines += ["", "## Failing cases", ""]
    for r in result.failures[:failures_shown]:
        bad = [m for m in r.metrics if not m.passed]
        detail = "; ".join(
            f"{m.name} = {_fmt(m.value)} > {_fmt(m.threshold)}"
            + (f" [batch {m.index}]" if m.index is not None else "")
            + (f" ({m.note})" if m.note else "")
            + (f" err {_fmt(m.error)} vs SciPy {_fmt(m.peer_error)}"
               if m.error is not None and m.peer_error is not None else "")
            for m in bad[:4])
        if r.error and not bad:
            detail = r.error.splitlines()[-1][:300]
        lines.append(f"- `{r.op}` {r.dtype} `{r.case}`: {detail}")
    if len(result.failures) > failures_shown:
        lines.append(f"- ... and {len(result.failures) - failures_shown} more (see the JSON)")
    lines += ["", "## Every group", "", "<details><summary>op × dtype × class</summary>", "",
              "| op | dtype | class | cases | worst metric (case) | score | status |",
              "| --- | --- | --- | --- | --- | --- | --- |"]
    for (op, d, cls), rs in groups(recs, "op", "dtype", "cls").items():
        score, what, _ = worst_of(rs)
        status = "pass" if all(r.passed for r in rs) else "FAIL"
        lines.append(f"| {op} | {d} | {cls} | {len(rs)} | {what} | {_fmt(score)} | {status} |")
    lines += ["", "</details>", ""]
    return "\n".join(lines)


def write_all(result: SuiteResult, out_dir: Path, plots: bool = True) -> dict[str, Path]:
    """Write conformance.json, report.md and the plots into out_dir."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": write_json(result, out_dir / "conformance.json")}
    made = []
    if plots:
        p = plot_scores(result, out_dir / "scores.png")
        if p:
            made.append(p)
        for d in dict.fromkeys(r.dtype for r in result.records):
            p = plot_forward_vs_cond(result, d, out_dir / f"forward_vs_cond_{d}.png")
            if p:
                made.append(p)
    md = out_dir / "report.md"
    md.write_text(markdown(result, made))
    paths["markdown"] = md
    for p in made:
        paths[p.stem] = p
    return paths


# ----------------------------------------------------------------------------- terminal


def print_summary(result: SuiteResult, console=None, max_failures: int = 40) -> None:
    """Rich tables: op × dtype (worst score, failures), then failing op × dtype × class."""
    if not HAVE_RICH:
        _print_plain(result)
        return
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = console if isinstance(console, Console) else Console()
    recs = result.records
    dtypes = list(dict.fromkeys(r.dtype for r in recs))
    t = Table(title="conformance: worst metric/threshold (failing/cases)", show_lines=False)
    t.add_column("op")
    for d in dtypes:
        t.add_column(d, justify="right")
    by = groups(recs, "op", "dtype")
    for op in dict.fromkeys(r.op for r in recs):
        cells = []
        for d in dtypes:
            rs = by.get((op, d))
            if not rs:
                cells.append("")
                continue
            score, _, _ = worst_of(rs)
            fails = sum(not r.passed for r in rs)
            style = "red" if fails else "green"
            cells.append(f"[{style}]{_fmt(score)} ({fails}/{len(rs)})[/{style}]")
        t.add_row(escape(op), *cells)
    console.print(t)
    fail_groups = [(k, rs) for k, rs in groups(recs, "op", "dtype", "cls").items()
                   if any(not r.passed for r in rs)]
    if fail_groups:
        f = Table(title=f"failing op × dtype × class ({len(fail_groups)})")
        for c in ("op", "dtype", "class", "failing", "worst metric (case)", "score"):
            f.add_column(c)
        for (op, d, cls), rs in fail_groups[:max_failures]:
            score, what, _ = worst_of(rs)
            f.add_row(escape(op), d, cls, f"{sum(not r.passed for r in rs)}/{len(rs)}",
                      escape(what), _fmt(score))
        console.print(f)
        if len(fail_groups) > max_failures:
            console.print(f"... {len(fail_groups) - max_failures} more groups in the report")
    verdict = "[green]PASS[/green]" if result.passed else "[red]FAIL[/red]"
    console.print(f"{len(recs)} cases, {len(result.failures)} failing: {verdict} "
                  f"({result.meta['seconds']} s on {result.meta['device']})")


def _print_plain(result: SuiteResult, max_failures: int = 40) -> None:
    recs = result.records
    dtypes = list(dict.fromkeys(r.dtype for r in recs))
    by = groups(recs, "op", "dtype")
    print(f"{'op':<22}" + "".join(f"{d:>20}" for d in dtypes))
    for op in dict.fromkeys(r.op for r in recs):
        cells = []
        for d in dtypes:
            rs = by.get((op, d))
            if not rs:
                cells.append(f"{'':>20}")
                continue
            score, _, _ = worst_of(rs)
            cells.append(f"{_fmt(score) + f' ({sum(not r.passed for r in rs)}/{len(rs)})':>20}")
        print(f"{op:<22}" + "".join(cells))
    fail_groups = [(k, rs) for k, rs in groups(recs, "op", "dtype", "cls").items()
                   if any(not r.passed for r in rs)]
    for (op, d, cls), rs in fail_groups[:max_failures]:
        score, what, _ = worst_of(rs)
        fails = sum(not r.passed for r in rs)
        print(f"FAIL {op} {d} {cls}: {fails}/{len(rs)} {what} {_fmt(score)}")
    verdict = "PASS" if result.passed else "FAIL"
    print(f"{len(recs)} cases, {len(result.failures)} failing: {verdict} "
          f"({result.meta['seconds']} s on {result.meta['device']})")
