"""``mtfsl-report SWEEP_DIR``: tables (Markdown, CSV) and plots (PNG) for a sweep.

Groups jobs by every override except the replicate ones (seed, few-shot split), reports mean
+- sample std and n of every test metric, plots each primary test metric against
``few_shot.k`` when the sweep varies it, and draws the training curves of every group.
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import sys
from collections.abc import Sequence
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only, no display
import matplotlib.pyplot as plt

from mtfsl.errors import MtfslError
from mtfsl.evaluation.report import atomic_write
from mtfsl.resolve import load_run_config, resolve_tasks
from mtfsl.summary import (
    REPLICATE_KEYS,
    Group,
    Job,
    common_overrides,
    group_jobs,
    markdown,
    read_sweep,
    reported_metrics,
)


def primary_suffixes(jobs: Sequence[Job]) -> tuple[str, ...]:
    """``/TASK/METRIC`` of every task's primary metric (its kind's), from the jobs' configs;
    only these are plotted, so token accuracy (with O) never shares an axis with entity F1."""
    found: set[str] = set()
    for job in jobs:
        try:
            cfg = load_run_config(job.path)
        except (MtfslError, OSError, ValueError):
            continue  # a job without a readable config.yaml: its metrics are still tabled
        found.update(f"/{t.name}/{t.primary_metric}" for t in resolve_tasks(cfg).values())
    return tuple(sorted(found))


def csv_table(groups: Sequence[Group], prefixes: Sequence[str]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["group", "job", "metric", "mean", "std", "n"])
    metrics = reported_metrics(groups, prefixes)
    for metric in metrics:
        for g in groups:
            mean, std, n = g.stats(metric)
            if n:
                writer.writerow([g.name, "", metric, f"{mean:.4f}", f"{std:.4f}", n])
    # then every finished job's own value (its folder under the sweep), for plots elsewhere
    for g in groups:
        for job in g.finished():
            for metric in metrics:
                if metric in (job.metrics or {}):
                    value = f"{job.metrics[metric]:.4f}"
                    writer.writerow([g.name, job.path.name, metric, value, "", 1])
    return out.getvalue()


def varying(jobs: Sequence[Job]) -> dict[str, str]:
    """Per job folder, the overrides that differ between the jobs (a legend label)."""
    common = common_overrides(jobs)
    return {j.path.name: " ".join(o for o in j.overrides if o not in common) for j in jobs}


def _k(job: Job) -> int | None:
    for o in job.overrides:
        key, _, value = o.partition("=")
        if key.lstrip("+~") == "few_shot.k" and value.isdigit():
            return int(value)
    return None


def plot_vs_k(jobs: Sequence[Job], metric: str, path: Path) -> bool:
    """Mean +- std of ``metric`` against few_shot.k, one line per other setting."""
    if not any(_k(j) is not None for j in jobs):
        return False
    series = group_jobs(jobs, (*REPLICATE_KEYS, "few_shot.k"))
    fig, ax = plt.subplots(figsize=(6, 4))
    for s in series:
        by_k = group_jobs([j for j in s.jobs if _k(j) is not None], REPLICATE_KEYS)
        points = sorted((_k(g.jobs[0]), *g.stats(metric)) for g in by_k)
        points = [p for p in points if p[3]]
        if points:
            ks, means, stds, _ = zip(*points, strict=True)
            ns = "/".join(sorted({str(p[3]) for p in points}))
            label = f"{s.name[:60]} (n={ns})"
            ax.errorbar(ks, means, yerr=stds, marker="o", capsize=3, label=label)
    ax.set_xlabel("few_shot.k")
    ax.set_ylabel(metric)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def _history(job: Job, name: str) -> list[dict[str, float]]:
    path = job.path / name
    return json.loads(path.read_text())["history"] if path.is_file() else []


def plot_curves(group: Group, path: Path) -> bool:
    """Training loss and dev primary metric against step, one line per job."""
    primary = primary_suffixes(group.jobs)
    runs = [
        (j, _history(j, "train_history.json"), _history(j, "dev_history.json")) for j in group.jobs
    ]
    if not any(train for _, train, _ in runs):
        return False
    labels = varying(group.jobs)  # e.g. "seed=2", not the job's folder number
    fig, (loss_ax, dev_ax) = plt.subplots(1, 2, figsize=(10, 4))
    for job, train, dev in runs:
        for key in sorted({k for r in train for k in r if k.startswith("loss/")}):
            rows = [r for r in train if key in r]
            loss_ax.plot(
                [r["step"] for r in rows],
                [r[key] for r in rows],
                lw=1,
                label=f"{labels[job.path.name] or job.path.name} {key[5:]}",
            )
        for key in sorted({k for r in dev for k in r if k.endswith(primary)}):
            dev_ax.plot(
                [r["step"] for r in dev],
                [r[key] for r in dev],
                marker=".",
                lw=1,
                label=f"{labels[job.path.name] or job.path.name} {key}",
            )
    loss_ax.set(xlabel="step", ylabel="training loss", title=group.name[:70])
    dev_ax.set(xlabel="step", ylabel="dev metric")
    for ax in (loss_ax, dev_ax):
        if ax.lines:
            ax.legend(fontsize=6)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


def write_report(sweep: Path, out: Path, prefixes: Sequence[str] = ("test/",)) -> list[Path]:
    """Write report.md, report.csv and plots into ``out``; return the files written."""
    jobs = read_sweep(sweep)
    if not jobs:
        raise SystemExit(f"mtfsl-report: error: {sweep}: no job folders (with .hydra/) found")
    groups = group_jobs(jobs)
    out.mkdir(parents=True, exist_ok=True)
    written = [out / "report.md", out / "report.csv"]
    plots: list[Path] = []
    primary = primary_suffixes(jobs)
    for metric in reported_metrics(groups, prefixes):
        if metric.endswith(primary):
            path = out / f"{metric.replace('/', '_')}_vs_k.png"
            if plot_vs_k(jobs, metric, path):
                plots.append(path)
    for i, group in enumerate(groups):
        path = out / f"curves_{i}.png"
        if plot_curves(group, path):
            plots.append(path)
    text = f"# Sweep {sweep}\n\n{markdown(groups, prefixes)}"
    if plots:
        text += "\n" + "\n".join(f"![{p.stem}]({p.name})" for p in plots) + "\n"
    text += "\n" + "\n".join(f"- curves_{i}.png: {g.name}" for i, g in enumerate(groups)) + "\n"
    atomic_write(out / "report.md", text)
    atomic_write(out / "report.csv", csv_table(groups, prefixes))
    return written + plots


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="mtfsl-report", description=__doc__.splitlines()[0])
    parser.add_argument("sweep", type=Path, help="a multirun folder (jobs in numbered folders)")
    parser.add_argument("--out", type=Path, help="where to write (default: SWEEP/report)")
    parser.add_argument(
        "--prefix", action="append", help="metric prefixes to report (default: test/)"
    )
    args = parser.parse_args(argv)
    if not args.sweep.is_dir():
        sys.exit(f"mtfsl-report: error: {args.sweep}: no such folder")
    files = write_report(args.sweep, args.out or args.sweep / "report", args.prefix or ["test/"])
    print((args.out or args.sweep / "report").joinpath("report.md").read_text())
    print("wrote " + ", ".join(str(f) for f in files))


if __name__ == "__main__":
    main()
