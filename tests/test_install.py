"""As a user installs it: mtfsl built and installed (not editable) into a fresh virtual
environment, then trained on JSON-lines files from a folder outside the checkout, with one
YAML of the user's own ($MTFSL_CONFIG_DIR) and with no YAML at all."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest

from tests.conftest import FIXTURES

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def user_env(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A fresh venv holding a non-editable mtfsl; its dependencies come from this
    environment's site-packages through a .pth file (no network, no second torch)."""
    venv = tmp_path_factory.mktemp("user") / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    python = venv / "bin" / "python"
    site = subprocess.run(
        [python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()
    (Path(site) / "deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    install = [python, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", ROOT]
    subprocess.run(install, check=True, capture_output=True)
    return venv


def test_the_installed_package_is_the_venvs_own(user_env: Path) -> None:
    where = subprocess.run(
        [
            user_env / "bin" / "python",
            "-c",
            "import mtfsl.kinds, mtfsl.configs as c; print(c.__file__)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert where.startswith(str(user_env)) and "site-packages" in where


def user_data(folder: Path) -> Path:
    """The user's own data folder: run_ner-layout JSON lines, outside the checkout."""
    data = folder / "data"
    data.mkdir()
    for split in ("train", "dev", "test"):
        (data / f"{split}.json").write_text((FIXTURES / "toy_jsonl" / f"{split}.json").read_text())
    return data


def train(user_env: Path, cwd: Path, *overrides: str, env: dict[str, str] | None = None) -> dict:
    command = [
        user_env / "bin" / "mtfsl-train",
        "model=tiny",
        "hardware=cpu",
        "trainer.max_steps=4",
        "trainer.batch_size=4",
        f"data.cache_dir={cwd / 'cache'}",
        "hydra.run.dir=run",
        *overrides,
    ]
    proc = subprocess.run(
        command, cwd=cwd, capture_output=True, text=True, env={**os.environ, **(env or {})}
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    return json.loads((cwd / "run" / "metrics.json").read_text())


def test_a_jsonl_task_from_the_users_own_folder(user_env: Path, tmp_path: Path) -> None:
    data = user_data(tmp_path)
    task_dir = tmp_path / "my_configs" / "task"
    task_dir.mkdir(parents=True)
    (task_dir / "wnut.yaml").write_text(
        "# @package task.wnut\n"
        "defaults:\n  - /schema/kind/tagging@_here_\n  - /schema/reader/jsonl@reader\n"
        "  - _self_\n\n"
        "files:\n  train: train.json\n  dev: dev.json\n  test: test.json\n"
    )
    metrics = train(
        user_env,
        tmp_path,
        "task=wnut",
        f"data.root={data}",
        env={"MTFSL_CONFIG_DIR": str(tmp_path / "my_configs")},
    )
    assert metrics["train/steps"] == 4 and metrics["train/wnut/examples"] == 11
    assert {"test/wnut/f1", "dev/wnut/f1"} <= set(metrics)
    assert (tmp_path / "run" / "predictions" / "test_wnut.conll").is_file()


def test_a_jsonl_task_with_no_yaml_at_all(user_env: Path, tmp_path: Path) -> None:
    data = user_data(tmp_path)
    task = (
        "+task.wnut={kind: tagging, reader: {format: jsonl}, "
        f"files: {{train: {data}/train.json, test: {data}/test.json}}}}"
    )
    metrics = train(user_env, tmp_path, "~task", task)
    assert metrics["train/wnut/examples"] == 11 and "test/wnut/f1" in metrics
    assert not any(k.startswith("dev/") for k in metrics)  # no dev file: the last model
