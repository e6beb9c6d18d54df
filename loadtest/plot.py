"""Tables and the plot of BENCHMARKS.md from `loadtest.bench` results.

    python -m loadtest.plot docs/bench/before.log docs/bench/after.json -o docs/img/throughput.png

Takes `--out` JSON files of `loadtest.bench`, or its stderr logs (one line per run), and
prints, per file, the medians per offered load for Hadir and the echo, with ratios.
"""

from __future__ import annotations

import argparse
import json
import re
import statistics
from pathlib import Path
from typing import Any

LINE = re.compile(
    r"\[(?P<label>\S+) rep (?P<rep>\d+)\] (?P<target>\w+)\s+offered\s+(?P<offered>\S+): +"
    r"(?P<eps>[\d.]+) ev/s p99 +(?P<p99>[\d.]+) ms +(?P<us>[\d.]+) µs/ev"
)


def load(path: Path) -> tuple[str, list[dict[str, Any]]]:
    if path.suffix == ".json":
        data = json.loads(path.read_text())
        return str(data["label"]), list(data["results"])
    results: list[dict[str, Any]] = []
    label = path.stem
    rows = [m for m in map(LINE.search, path.read_text().splitlines()) if m]
    # Runs come in order: max, the fixed rates, then half of that repetition's Hadir max.
    for m in rows:
        label = m["label"]
        offered = m["offered"]
        results.append(
            {
                "target": m["target"],
                "rep": int(m["rep"]),
                "offered": offered,
                "offered_rate": 0.0 if offered == "max" else float(offered),
                "events_per_s": float(m["eps"]),
                "ack_p99_ms": float(m["p99"]),
                "server_cpu_us_per_event": float(m["us"]),
            }
        )
    for r in results:
        rates = [x["offered"] for x in results if x["rep"] == r["rep"] and x["offered"] != "max"]
        r["point"] = "max" if r["offered"] == "max" else r["offered_rate"]
        if r["offered"] == rates[-1]:
            r["point"] = "half"
    return label, results


def medians(results: list[dict[str, Any]]) -> dict[tuple[Any, str], dict[str, float]]:
    out: dict[tuple[Any, str], dict[str, float]] = {}
    keys = ("offered_rate", "events_per_s", "ack_p99_ms", "server_cpu_us_per_event")
    for r in results:
        out.setdefault((r["point"], r["target"]), {})
    for point, target in out:
        rs = [r for r in results if r["point"] == point and r["target"] == target]
        out[(point, target)] = {k: statistics.median(float(r[k]) for r in rs) for k in keys}
        out[(point, target)]["n"] = len(rs)
    return out


def table(label: str, results: list[dict[str, Any]]) -> str:
    med = medians(results)
    order = {"max": -3.0, "half": -2.0, "target-half": -1.0}
    points = sorted({p for p, _ in med}, key=lambda p: order.get(p, p))
    lines = [
        f"**{label}** (medians of {max(int(v['n']) for v in med.values())} runs)",
        "",
        "| offered ev/s | echo ev/s | Hadir ev/s | Hadir ÷ echo | echo p99 ms | Hadir p99 ms "
        "| echo µs/ev | Hadir µs/ev | Hadir ÷ echo CPU |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for p in points:
        e, h = med[(p, "echo")], med[(p, "hadir")]
        name = (
            "max (window 8)"
            if p == "max"
            else f"{h['offered_rate']:,.0f} (half of Hadir's max)"
            if p == "half"
            else f"{h['offered_rate']:,.0f} (0.2 × the echo's max)"
            if p == "target-half"
            else f"{p:,.0f}"
        )
        lines.append(
            f"| {name} | {e['events_per_s']:,.0f} | {h['events_per_s']:,.0f} "
            f"| {h['events_per_s'] / e['events_per_s']:.2f} | {e['ack_p99_ms']:.1f} "
            f"| {h['ack_p99_ms']:.1f} | {e['server_cpu_us_per_event']:.1f} "
            f"| {h['server_cpu_us_per_event']:.1f} "
            f"| {h['server_cpu_us_per_event'] / e['server_cpu_us_per_event']:.2f} |"
        )
    return "\n".join(lines)


def plot(runs: list[tuple[str, list[dict[str, Any]]]], out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {"echo": "o--", "hadir": "s-"}
    for label, results in runs:
        med = medians(results)
        for target in ("echo", "hadir"):
            if target == "echo" and label != runs[-1][0]:
                continue  # one baseline curve: the latest run's
            pts = sorted(
                (v["offered_rate"], v["events_per_s"], v["ack_p99_ms"])
                for (p, t), v in med.items()
                if t == target and p != "max"
            )
            xs = [x for x, _, _ in pts]
            name = "echo baseline" if target == "echo" else f"Hadir ({label})"
            ax1.plot(xs, [y for _, y, _ in pts], styles[target], label=name)
            ax2.plot(xs, [z for _, _, z in pts], styles[target], label=name)
            top = med.get(("max", target))
            if top is not None:
                ax1.axhline(top["events_per_s"], ls=":", lw=0.8, color=ax1.lines[-1].get_color())
    ax1.set_xlabel("offered events/s")
    ax1.set_ylabel("acked events/s (dotted: window-bound max)")
    ax1.set_title("Throughput, one server process on one core")
    ax2.set_xlabel("offered events/s")
    ax2.set_ylabel("ack latency p99 (ms)")
    ax2.set_yscale("log")
    ax2.axhline(50, color="grey", lw=0.8)
    ax2.set_title("p99 ack latency (grey: 50 ms target)")
    for ax in (ax1, ax2):
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m loadtest.plot", description=__doc__)
    p.add_argument("inputs", nargs="+", type=Path)
    p.add_argument("-o", "--out", type=Path, default=Path("docs/img/throughput.png"))
    a = p.parse_args(argv)
    runs = [load(path) for path in a.inputs]
    for label, results in runs:
        print(table(label, results))
        print()
    plot(runs, a.out)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
