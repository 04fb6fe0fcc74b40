"""Rows for ``fmkit compare``: every bundle's accuracy, size and speed, and the Pareto frontier."""

from __future__ import annotations

from pathlib import Path


def measure_and_record(path: Path, manifest, threads: int | None) -> dict:
    from fmkit.bundle import update_manifest
    from fmkit.compress.methods import CompressContext
    from fmkit.compress.stage import test_texts
    from fmkit.runtime.measure import measure_bundle

    texts, _ = test_texts(CompressContext(path, manifest, 0.0))
    figures = measure_bundle(path, texts, threads=threads)
    update_manifest(path, lambda m: m.benchmarks.__setitem__(figures["runtime"], figures))
    return figures


def compare_bundles(paths, *, measure: bool = True, threads: int | None = None) -> list[dict]:
    """One row per bundle; ``accuracy_drop_points`` is the last step's drop, ``total_...`` the drop vs the task model."""
    from fmkit.bundle import read_manifest
    from fmkit.bundle.lineage import total_accuracy_drop

    rows = []
    for text in paths:
        path = Path(text)
        manifest = read_manifest(path)
        runtime = getattr(manifest, "runtime", "torch")
        figures = manifest.benchmarks.get(runtime)
        if figures is None and measure:
            figures = measure_and_record(path, manifest, threads)
        figures = figures or {}
        test = manifest.metrics.get("test", {})
        rows.append({
            "bundle": str(path),
            "stage": manifest.lineage[-1].stage if manifest.lineage else "-",
            "runtime": runtime,
            "test_accuracy": test.get("accuracy"),
            "test_macro_f1": test.get("macro_f1"),
            "accuracy_drop_points": manifest.compression.get("accuracy_drop_points"),
            "total_accuracy_drop_points": total_accuracy_drop(manifest),
            "status": manifest.compression.get("status", "ok"),
            "size_mb": figures["size_bytes"] / 1e6 if figures else None,
            "parameters": figures.get("parameters"),
            "latency_p50_ms": figures.get("latency_p50_ms"),
            "latency_p95_ms": figures.get("latency_p95_ms"),
            "throughput_per_second": figures.get("throughput_per_second"),
            "peak_rss_mb": figures.get("peak_rss_mb"),
            "epsilon": manifest.privacy.get("dp", {}).get("epsilon"),
        })
    mark_pareto(rows)
    return rows


def mark_pareto(rows: list[dict]) -> None:
    """A row is on the frontier when no other row is at least as accurate and at least as fast, and better in one."""
    measured = [r for r in rows if r["test_accuracy"] is not None and r["latency_p50_ms"] is not None]
    for row in rows:
        row["pareto"] = row in measured and not any(
            other["test_accuracy"] >= row["test_accuracy"] and other["latency_p50_ms"] <= row["latency_p50_ms"]
            and (other["test_accuracy"] > row["test_accuracy"] or other["latency_p50_ms"] < row["latency_p50_ms"])
            for other in measured if other is not row
        )


COLUMNS = [("bundle", "bundle", "{}"), ("stage", "stage", "{}"), ("runtime", "runtime", "{}"),
           ("test_accuracy", "acc", "{:.4f}"), ("test_macro_f1", "f1", "{:.4f}"),
           ("accuracy_drop_points", "step drop", "{:+.2f}"), ("total_accuracy_drop_points", "total drop", "{:+.2f}"),
           ("size_mb", "MB", "{:.1f}"),
           ("parameters", "params", "{:,}"), ("latency_p50_ms", "p50 ms", "{:.1f}"),
           ("latency_p95_ms", "p95 ms", "{:.1f}"), ("throughput_per_second", "texts/s", "{:.1f}"),
           ("peak_rss_mb", "RSS MB", "{:.0f}"), ("status", "status", "{}")]


def format_table(rows: list[dict]) -> str:
    table = [[title for _, title, _ in COLUMNS]]
    for row in rows:
        cells = ["-" if row.get(key) is None else fmt.format(row[key]) for key, _, fmt in COLUMNS]
        cells[0] = ("* " if row["pareto"] else "  ") + cells[0]
        table.append(cells)
    widths = [max(len(r[i]) for r in table) for i in range(len(COLUMNS))]
    return "\n".join("  ".join(c.rjust(w) if i else c.ljust(w) for i, (c, w) in enumerate(zip(r, widths)))
                     for r in table)


def pareto_plot(rows: list[dict], path) -> Path | None:
    measured = [r for r in rows if r["test_accuracy"] is not None and r["latency_p50_ms"] is not None]
    if not measured:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(7, 4.5))
    largest = max(r["size_mb"] or 1 for r in measured)
    for row in measured:
        color = "tab:red" if row["status"] == "failed" else ("tab:blue" if row["pareto"] else "tab:gray")
        axes.scatter(row["latency_p50_ms"], 100 * row["test_accuracy"], s=40 + 400 * (row["size_mb"] or 0) / largest,
                     color=color, alpha=0.6, edgecolors="black")
        axes.annotate(Path(row["bundle"]).name, (row["latency_p50_ms"], 100 * row["test_accuracy"]),
                      textcoords="offset points", xytext=(6, 4), fontsize=8)
    frontier = sorted((r for r in measured if r["pareto"]), key=lambda r: r["latency_p50_ms"])
    axes.plot([r["latency_p50_ms"] for r in frontier], [100 * r["test_accuracy"] for r in frontier],
              color="tab:blue", linewidth=1, linestyle="--", label="Pareto frontier")
    axes.set_xlabel("latency p50 at batch 1 (ms)")
    axes.set_ylabel("test accuracy (%)")
    axes.set_title("accuracy vs latency (marker size = size on disk; red = failed budget)")
    axes.legend(loc="lower right")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return Path(path)
