import importlib.util
import json
from pathlib import Path

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "compare_tasks.py"
spec = importlib.util.spec_from_file_location("compare_tasks", SCRIPT)
compare_tasks = importlib.util.module_from_spec(spec)
spec.loader.exec_module(compare_tasks)


def job(sweep: Path, num: int, task: str, metrics: dict[str, float] | None) -> None:
    folder = sweep / str(num)
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "overrides.yaml").write_text(f"- task={task}\n- seed=1\n")
    if metrics is not None:
        (folder / "metrics.json").write_text(json.dumps(metrics))


def test_single_vs_multi_table(tmp_path: Path) -> None:
    job(tmp_path, 0, "conll", {"test/conll/f1": 80.0, "test/conll/accuracy": 97.0})
    job(tmp_path, 1, "conll_pos", {"test/conll_pos/accuracy": 92.5})
    job(tmp_path, 2, "conll_mtl", {"test/conll/f1": 81.25, "test/conll_pos/accuracy": 92.0})
    job(tmp_path, 3, "conll_banking", None)
    assert compare_tasks.table(tmp_path).splitlines() == [
        "| task (test metric) | alone | conll_mtl | ",
        "|---|---|---|",
        "| conll (f1) | 80.00 | 81.25 |",
        "| conll_pos (accuracy) | 92.50 | 92.00 |",
        "",
        "Unfinished jobs (not in the table): conll_banking",
    ]
