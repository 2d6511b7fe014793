"""Aggregate a sweep: mean +- std of every job's metrics, grouped by everything except the
seed / split overrides; unfinished and failed jobs are listed, never averaged."""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

# Overrides that only repeat an experiment (the replicates averaged over).
REPLICATE_KEYS = ("seed", "few_shot.split", "few_shot.seed")


@dataclass
class Job:
    path: Path
    overrides: list[str]
    status: str
    metrics: dict[str, float] | None

    def group(
        self, replicate_keys: Sequence[str] = REPLICATE_KEYS, common: Collection[str] = ()
    ) -> str:
        kept = [
            o
            for o in self.overrides
            if o not in common and o.lstrip("+~").split("=", 1)[0] not in replicate_keys
        ]
        return " ".join(sorted(kept)) or "(all jobs)"


@dataclass
class Group:
    name: str
    jobs: list[Job] = field(default_factory=list)

    def finished(self) -> list[Job]:
        return [j for j in self.jobs if j.metrics is not None and j.status == "finished"]

    def stats(self, metric: str) -> tuple[float, float, int]:
        """(mean, sample std (n-1; 0 for one job), n) over the finished jobs having it."""
        values = [j.metrics[metric] for j in self.finished() if metric in (j.metrics or {})]
        n = len(values)
        if not n:
            return math.nan, math.nan, 0
        mean = sum(values) / n
        var = sum((v - mean) ** 2 for v in values) / (n - 1) if n > 1 else 0.0
        return mean, math.sqrt(var), n


def _read_json(path: Path) -> dict[str, Any] | None:
    """A job file's JSON object; None when missing, and ValueError when it is damaged."""
    if not path.is_file():
        return None
    data = json.loads(path.read_text())
    if not isinstance(data, dict):
        raise ValueError("not a JSON object")
    return data


def read_job(path: Path) -> Job:
    """A job folder's overrides, status and metrics. A damaged file (cut short by a crash)
    makes the job ``damaged (FILE: reason)``, listed but never averaged, and the sweep goes on."""
    overrides_file = path / ".hydra" / "overrides.yaml"
    overrides = yaml.safe_load(overrides_file.read_text()) if overrides_file.is_file() else []
    files: dict[str, dict[str, Any] | None] = {}
    for name in ("status.json", "metrics.json"):
        try:
            files[name] = _read_json(path / name)
        except ValueError as err:
            return Job(path, list(overrides or []), f"damaged ({name}: {err})", None)
    status = str((files["status.json"] or {}).get("status", "unknown"))
    return Job(path, list(overrides or []), status, files["metrics.json"])


def read_sweep(sweep_dir: Path) -> list[Job]:
    """Every job folder (one holding ``.hydra/``) directly under ``sweep_dir``, in job order."""
    folders = [p for p in sweep_dir.iterdir() if (p / ".hydra").is_dir()]
    folders.sort(
        key=lambda p: (not p.name.isdigit(), int(p.name) if p.name.isdigit() else 0, p.name)
    )
    return [read_job(p) for p in folders]


def common_overrides(jobs: Sequence[Job]) -> set[str]:
    """Overrides every job shares: said once, not in every group's name."""
    sets = [set(j.overrides) for j in jobs]
    return set.intersection(*sets) if sets else set()


def group_jobs(jobs: Sequence[Job], replicate_keys: Sequence[str] = REPLICATE_KEYS) -> list[Group]:
    groups: dict[str, Group] = {}
    common = common_overrides(jobs)
    for job in jobs:
        name = job.group(replicate_keys, common)
        groups.setdefault(name, Group(name)).jobs.append(job)
    return list(groups.values())


def reported_metrics(groups: Sequence[Group], prefixes: Sequence[str] = ("test/",)) -> list[str]:
    names = {
        k
        for g in groups
        for j in g.finished()
        for k in (j.metrics or {})
        if k.startswith(tuple(prefixes))
    }
    return sorted(names)


def markdown(groups: Sequence[Group], prefixes: Sequence[str] = ("test/",)) -> str:
    """One row per group and metric: mean +- sample std over its finished jobs, and n."""
    common = common_overrides([j for g in groups for j in g.jobs])
    lines = [f"Overrides of all jobs: {' '.join(sorted(common)) or '(none)'}", ""]
    lines += ["| group | metric | mean | std | n |", "|---|---|---:|---:|---:|"]
    for metric in reported_metrics(groups, prefixes):
        for g in groups:
            mean, std, n = g.stats(metric)
            if n:
                lines.append(f"| {g.name} | {metric} | {mean:.2f} | {std:.2f} | {n} |")
    problems = [j for g in groups for j in g.jobs if j not in g.finished()]
    if problems:
        lines += ["", "Not included (not finished):", ""]
        lines += [f"- {j.path.name}: {j.status} ({' '.join(j.overrides)})" for j in problems]
    return "\n".join(lines) + "\n"


def summary_json(groups: Sequence[Group], prefixes: Sequence[str] = ("test/",)) -> dict:
    out: dict[str, dict] = {}
    for g in groups:
        stats = {}
        for metric in reported_metrics(groups, prefixes):
            mean, std, n = g.stats(metric)
            if n:
                stats[metric] = {"mean": mean, "std": std, "n": n}
        out[g.name] = {
            "metrics": stats,
            "jobs": [j.path.name for j in g.finished()],
            "not_finished": {j.path.name: j.status for j in g.jobs if j not in g.finished()},
        }
    return out
