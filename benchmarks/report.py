"""Reports of a run: ratios to the best peer, checks, terminal table, JSON, Markdown, plots.

Ratios read "ours / best peer" on the minimum times: below 1, mlx_linalg is faster than every
peer of that case; above 1, the best peer is faster by that factor. Speedups in the plots read
"peer / ours". The roofline column is the achieved GFLOP/s of mlx_linalg (nominal flop count
of ``benchmarks.cases`` over its minimum time) as a percentage of the peak recorded with the
run (a measured large matmul, or ``--peak-gflops``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from benchmarks.cases import Case
from benchmarks.machine import summary
from benchmarks.peers import OURS
from benchmarks.runner import Result, peak_dtype
from benchmarks.timing import Timing


@dataclass(frozen=True)
class Criterion:
    """A pass/fail rule on the time ratio against the fastest of ``peers``.

    ``kind`` is "min_speedup" (reference time / ours >= value) or "max_ratio"
    (ours / reference time <= value).
    """

    peers: tuple[str, ...]
    kind: str
    value: float

    @property
    def text(self) -> str:
        who = "/".join(self.peers)
        if self.kind == "min_speedup":
            return f">= {self.value:g}x faster than {who}"
        return f"<= {self.value:g}x the time of {who}"

    @property
    def short(self) -> str:
        """A column header: ``>=5x vs mx.linalg`` or ``<=1.25x numpy/scipy``."""
        who = "/".join(self.peers)
        if self.kind == "min_speedup":
            return f">={self.value:g}x vs {who}"
        return f"<={self.value:g}x {who}"

    def evaluate(self, by_peer: dict[str, Result]) -> dict:
        ours = by_peer.get(OURS)
        times = [by_peer[p].min_s for p in self.peers if p in by_peer and by_peer[p].status == "ok"]
        if ours is None or ours.status != "ok" or not times:
            return {"criterion": self.text, "ratio": None, "passed": None}
        reference = min(times)
        if self.kind == "min_speedup":
            ratio = reference / ours.min_s
            return {"criterion": self.text, "ratio": ratio, "passed": ratio >= self.value}
        ratio = ours.min_s / reference
        return {"criterion": self.text, "ratio": ratio, "passed": ratio <= self.value}


@dataclass
class Report:
    """Everything a run produced, and what the writers need."""

    title: str
    machine: dict
    config: dict
    peaks: dict[str, dict]
    peers: list[str]
    skipped_peers: dict[str, str]
    results: list[Result]
    criteria: Sequence[Criterion] = ()

    def cases(self) -> list[Case]:
        seen: dict[Case, None] = {}
        for r in self.results:
            seen.setdefault(r.case, None)
        return list(seen)

    def by_case(self) -> dict[Case, dict[str, Result]]:
        table: dict[Case, dict[str, Result]] = {}
        for r in self.results:
            table.setdefault(r.case, {})[r.peer] = r
        return table

    def peak(self, case: Case) -> float | None:
        return (self.peaks.get(peak_dtype(case.dtype)) or {}).get("gflops")

    def summaries(self) -> list[dict]:
        """Per case: ours, the best peer, the ratio, speedups, roofline, checks."""
        rows = []
        for case, by_peer in self.by_case().items():
            ours = by_peer.get(OURS)
            ours_ok = ours is not None and ours.status == "ok"
            others = [r for p, r in by_peer.items() if p != OURS and r.status == "ok"]
            best = min(others, key=lambda r: r.min_s) if others else None
            peak = self.peak(case)
            rows.append(
                {
                    "case": case.label,
                    **case.as_dict(),
                    "ours_min_s": ours.min_s if ours_ok else None,
                    "ours_median_s": ours.median_s if ours_ok else None,
                    "best_peer": best.peer if best else None,
                    "best_peer_min_s": best.min_s if best else None,
                    "ratio_to_best": ours.min_s / best.min_s if ours_ok and best else None,
                    "speedup_vs": {r.peer: r.min_s / ours.min_s for r in others} if ours_ok else {},
                    "gflops": ours.gflops if ours_ok else None,
                    "percent_of_peak": 100 * ours.gflops / peak if ours_ok and peak else None,
                    "checks": [c.evaluate(by_peer) for c in self.criteria],
                }
            )
        return rows

    def as_json(self) -> dict:
        return {
            "title": self.title,
            "machine": self.machine,
            "machine_summary": summary(self.machine),
            "config": self.config,
            "peak": self.peaks,
            "peers": self.peers,
            "skipped_peers": self.skipped_peers,
            "criteria": [
                {"peers": list(c.peers), "kind": c.kind, "value": c.value, "text": c.text}
                for c in self.criteria
            ],
            "results": [{**r.case.as_dict(), **r.as_dict(self.peak(r.case))} for r in self.results],
            "summary": self.summaries(),
        }


def load_json(data: dict) -> Report:
    """The :class:`Report` that :meth:`Report.as_json` wrote (to re-render it elsewhere)."""
    results = []
    for row in data["results"]:
        n = row["n"]
        case = Case(
            op=row["op"],
            n=n,
            batch=tuple(row["batch"]),
            dtype=row["dtype"],
            m=None if row["m"] == n else row["m"],
            k=None if row["k"] in (None, n) else row["k"],
        )
        timing = None
        if "times_s" in row:
            timing = Timing(
                times=list(row["times_s"]),
                warmup=list(row["warmup_s"]),
                # results written before 2026-11-27 name it from_warmup (then the sample
                # was that warm-up itself)
                single_run=row.get("single_run", row.get("from_warmup", False)),
                error=row["error"],
            )
        results.append(
            Result(
                case,
                row["peer"],
                row["status"],
                timing,
                row["error_in_u"],
                row["note"],
                row.get("gpu_memory_held_bytes"),
            )
        )
    return Report(
        title=data["title"],
        machine=data["machine"],
        config=data["config"],
        peaks=data["peak"],
        peers=data["peers"],
        skipped_peers=data["skipped_peers"],
        results=results,
        criteria=[Criterion(tuple(c["peers"]), c["kind"], c["value"]) for c in data["criteria"]],
    )


def _ms(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "-"
    ms = seconds * 1e3
    return f"{ms:.3g}" if ms < 100 else f"{ms:.0f}"


def _num(value: float | None, fmt: str = ".2f") -> str:
    return "-" if value is None or not math.isfinite(value) else format(value, fmt)


def _cell(result: Result | None) -> str:
    if result is None:
        return ""
    if result.status == "ok":
        mark = "*" if result.timing is not None and result.timing.single_run else ""
        return _ms(result.min_s) + mark
    return {"unsupported": "n/a", "skipped": "skip"}.get(result.status, "error")


def table_rows(report: Report) -> tuple[list[str], list[list[str]]]:
    """Header and rows shared by the terminal and Markdown tables."""
    peers = [p for p in report.peers if p != OURS]
    header = [
        "case",
        f"{OURS} ms min (median)",
        *[f"{p} ms" for p in peers],
        "best peer",
        "ours/best",
        "GFLOP/s",
        "% peak",
        "error (u)",
    ]
    header += [c.short for c in report.criteria]
    rows = []
    summaries = {s["case"]: s for s in report.summaries()}
    for case, by_peer in report.by_case().items():
        s = summaries[case.label]
        ours = by_peer.get(OURS)
        ours_text = _cell(ours)
        if ours is not None and ours.status == "ok":
            ours_text += f" ({_ms(ours.median_s)})"
        row = [
            case.label,
            ours_text,
            *[_cell(by_peer.get(p)) for p in peers],
            s["best_peer"] or "-",
            _num(s["ratio_to_best"]),
            _num(s["gflops"], ".1f"),
            _num(s["percent_of_peak"], ".1f"),
            _num(ours.error_u if ours is not None else None, ".2g"),
        ]
        row += [_check_mark(c) for c in s["checks"]]
        rows.append(row)
    return header, rows


def _check_mark(check: dict) -> str:
    if check["passed"] is None:
        return "?"
    return f"{'pass' if check['passed'] else 'FAIL'} ({check['ratio']:.2f}x)"


def print_table(report: Report) -> None:
    """The results as a terminal table (rich when installed, plain text otherwise)."""
    header, rows = table_rows(report)
    try:
        from rich.console import Console
        from rich.table import Table
    except ImportError:
        widths = [max(len(h), *(len(r[i]) for r in rows)) for i, h in enumerate(header)]
        print("  ".join(h.ljust(w) for h, w in zip(header, widths, strict=True)))
        for row in rows:
            print("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)))
        return
    table = Table(title=report.title, caption=summary(report.machine))
    for i, name in enumerate(header):
        table.add_column(name, justify="left" if i == 0 else "right")
    for row in rows:
        table.add_row(*row)
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(120, sum(len(h) for h in header) + 3 * len(header)))
    console.print(table)


def markdown(report: Report, plots: Sequence[str] = ()) -> str:
    """The Markdown report: machine, settings, peak, table, checks, notes, plots."""
    machine = report.machine
    clock = "CPU time of the process" if report.config.get("clock") == "cpu" else "wall-clock time"
    versions = ", ".join(f"{k} {v}" for k, v in machine.get("versions", {}).items())
    lines = [
        f"# {report.title}",
        "",
        *([report.config["note"], ""] if report.config.get("note") else []),
        f"- Machine: {summary(machine)}",
        f"- Date: {machine.get('date_utc')}; commit {machine.get('git_commit') or '-'}",
        f"- Versions: {versions}",
        f"- Environment: {_env_text(machine)}",
        f"- Timing: {_config_text(report.config)}",
        f"- Peak for the roofline: {_peak_text(report.peaks)}",
        "",
        f"Times are the minimum {clock} over the timed runs in ms (mlx_linalg also shows the "
        "median); "
        "`ours/best` is mlx_linalg's time over the fastest peer's (below 1: mlx_linalg is "
        "faster); GFLOP/s and % peak are mlx_linalg's, from the nominal flop counts in "
        "`benchmarks/cases.py`; error is mlx_linalg's accuracy metric in units of u "
        "(DESIGN.md). `*`: a single timed run (its warm-up calls took longer than the limit); "
        "`skip`: not run at this size in this preset, or not started before the time limit; "
        "`n/a`: the peer has no such op.",
        "",
    ]
    header, rows = table_rows(report)
    lines += [_md_row(header), _md_row(["---"] * len(header))]
    lines += [_md_row(row) for row in rows]
    if report.criteria:
        lines += [
            "",
            "Checks (pass/FAIL with the ratio): "
            + "; ".join(c.text for c in report.criteria)
            + ".",
        ]
    errors = [r for r in report.results if r.status == "error"]
    peer_errors = {}
    for r in report.results:
        if r.status == "ok" and r.error_u is not None:
            peer_errors.setdefault(r.peer, []).append(r.error_u)
    if peer_errors:
        lines += [
            "",
            "Largest accuracy metric per peer over the checked cases (units of u): "
            + ", ".join(f"{p} {max(v):.2g}" for p, v in peer_errors.items())
            + ".",
        ]
    if report.skipped_peers:
        lines += [
            "",
            "Peers not run here: "
            + "; ".join(f"{p} ({why})" for p, why in report.skipped_peers.items())
            + ".",
        ]
    if errors:
        lines += ["", "Errors:", ""]
        lines += [f"- {r.case.label}, {r.peer}: {r.note}" for r in errors]
        lines += _held_memory(report, errors)
    for plot in plots:
        lines += ["", f"![{Path(plot).stem}]({Path(plot).name})"]
    return "\n".join(lines) + "\n"


def _held_memory(report: Report, errors: list[Result]) -> list[str]:
    """For each case with an error, the GPU memory every peer held after it (GiB), where
    known: which framework kept memory when a case runs out of it."""
    lines = []
    for label in dict.fromkeys(r.case.label for r in errors):
        held = [
            f"{r.peer} {r.held_bytes / 2**30:.1f}"
            for r in report.results
            if r.case.label == label and r.held_bytes is not None
        ]
        if held:
            lines.append(f"- GPU memory held after {label} (GiB): {', '.join(held)}")
    return lines


def _md_row(cells: Sequence[str]) -> str:
    return "| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |"


def _env_text(machine: dict) -> str:
    env = machine.get("environment") or {}
    return ", ".join(f"{k}={v}" for k, v in env.items()) or "no BLAS/threading variables set"


def _config_text(config: dict) -> str:
    threads = config.get("threads")
    extra = ", ".join(f"{peer} {runs}" for peer, runs in (config.get("warmup_for") or {}).items())
    text = (
        f"device {config.get('device')}, {config.get('clock', 'wall')} clock, "
        f"{config.get('warmup')} warm-up{f' ({extra})' if extra else ''}, "
        f"up to {config.get('repeats')} timed runs per peer "
        f"within {config.get('budget_s')} s in {config.get('rounds', 1)} pass(es) over the "
        f"peers, {config.get('cooldown_s')} s idle between peers; "
        + (f"threads capped at {threads['threads']}" if threads else "library default threads")
    )
    if config.get("load_average_start"):
        text += (
            f"; load average (1 min) {config['load_average_start'][0]} at start, "
            f"{config['load_average_end'][0]} at end"
        )
    limit = (config.get("peer_settings") or {}).get("mlx_linalg", {}).get("memory_limit_gib")
    if limit:
        text += f"; MLX memory limit {limit} GiB (capped: the peers share the GPU)"
    return text


def _peak_text(peaks: dict) -> str:
    parts = [
        f"{d}: {p['gflops']:.0f} GFLOP/s ({p['source']})"
        for d, p in peaks.items()
        if p.get("gflops")
    ]
    return "; ".join(parts) or "none"


def write_json(report: Report, path: Path) -> None:
    path.write_text(json.dumps(report.as_json(), indent=1, default=_jsonable) + "\n")


def _jsonable(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return str(value)


def plot(report: Report, out_dir: Path) -> list[Path]:
    """Time vs n per op (log axes) and speedup bars; returns the PNG paths written."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    single = [c for c in report.cases() if not c.batch]
    by_op: dict[tuple[str, str], list[Case]] = {}
    for c in single:
        by_op.setdefault((c.op, c.dtype), []).append(c)
    table = report.by_case()
    if any(len({c.n for c in cases}) > 1 for cases in by_op.values()):
        columns = min(3, len(by_op))
        rows_ = math.ceil(len(by_op) / columns)
        fig, axes = plt.subplots(
            rows_, columns, figsize=(4.5 * columns, 3.6 * rows_), squeeze=False
        )
        for ax, ((op, dtype), cases) in zip(axes.flat, by_op.items(), strict=False):
            for peer in report.peers:
                points = sorted(
                    (c.n, table[c][peer].min_s)
                    for c in cases
                    if peer in table[c] and table[c][peer].status == "ok"
                )
                if points:
                    ax.plot(
                        *zip(*points, strict=True),
                        marker="o",
                        label=peer,
                        linewidth=2.5 if peer == OURS else 1.2,
                    )
            ax.set(xscale="log", yscale="log", title=f"{op} {dtype}", xlabel="n", ylabel="time (s)")
            ax.grid(True, which="both", alpha=0.3)
            if ax.get_legend_handles_labels()[0]:
                ax.legend(fontsize=7)
        for ax in list(axes.flat)[len(by_op) :]:
            ax.axis("off")
        fig.tight_layout()
        written.append(out_dir / "time_vs_n.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    summaries = [s for s in report.summaries() if s["speedup_vs"]]
    if summaries:
        peers = [p for p in report.peers if p != OURS]
        width = 0.8 / max(1, len(peers))
        fig, ax = plt.subplots(figsize=(max(6.0, 0.9 * len(summaries) + 2), 4.2))
        for i, peer in enumerate(peers):
            xs = [j + i * width for j, s in enumerate(summaries) if peer in s["speedup_vs"]]
            ys = [s["speedup_vs"][peer] for s in summaries if peer in s["speedup_vs"]]
            if xs:
                ax.bar(xs, ys, width=width, label=peer)
        ax.axhline(1.0, color="black", linewidth=0.8)
        ax.set_yscale("log")
        ax.set_ylabel("speedup of mlx_linalg (peer time / ours)")
        ax.set_xticks([j + (len(peers) - 1) * width / 2 for j in range(len(summaries))])
        ax.set_xticklabels([s["case"] for s in summaries], rotation=35, ha="right", fontsize=7)
        ax.legend(fontsize=7)
        ax.grid(True, axis="y", which="both", alpha=0.3)
        fig.tight_layout()
        written.append(out_dir / "ratios.png")
        fig.savefig(written[-1], dpi=110)
        plt.close(fig)
    return written


def write_all(report: Report, out_dir: Path, *, plots: bool = True) -> dict[str, Path]:
    """Write results.json, results.md and the plots into ``out_dir``; returns the paths."""
    out_dir.mkdir(parents=True, exist_ok=True)
    paths = {"json": out_dir / "results.json", "markdown": out_dir / "results.md"}
    write_json(report, paths["json"])
    pngs: list[Path] = []
    if plots:
        try:
            pngs = plot(report, out_dir)
        except ImportError as exc:
            print(f"[benchmarks] no plots: {exc}")
    paths["markdown"].write_text(markdown(report, [str(p) for p in pngs]))
    for png in pngs:
        paths[png.stem] = png
    return paths
