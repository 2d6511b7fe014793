"""Pick ``task.NAME.logistic_c`` for a K-shot classification task on held-out training
texts, never the test set: per seed, the runner's own K-shot draw is the support, and texts
of the training split outside it are the held-out set; the frozen encoder's normalised
mean-pooled states (what ``decoder=LOGISTIC`` fits on) are scored with each C.

    python scripts/logistic_c.py ../shared/data [--seeds 1 2] [--c 1 10 100 1000]
        [--held-out 1500] [overrides ...]      (default: experiment=fewshot_banking77)

Overrides replace the default, so name the experiment with them, e.g.
``experiment=fewshot_banking77 model=mpnet``.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression
from transformers import AutoModel, AutoTokenizer

from mtfsl.data.splits import load_task
from mtfsl.model.sources import resolve_model_path
from mtfsl.pipeline.fewshot import apply_few_shot
from mtfsl.resolve import compose_config, resolve_task


def states(texts: list[str], tokenizer, encoder, max_length: int) -> np.ndarray:
    out = []
    with torch.no_grad():
        for i in range(0, len(texts), 64):
            batch = tokenizer(
                texts[i : i + 64],
                padding=True,
                truncation=True,
                max_length=max_length,
                return_tensors="pt",
            )
            hidden = encoder(**batch).last_hidden_state
            mask = batch["attention_mask"][..., None].float()
            pooled = (hidden * mask).sum(1) / mask.sum(1)
            out.append(torch.nn.functional.normalize(pooled, dim=-1))
    return torch.cat(out).numpy()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("data_root")
    ap.add_argument("overrides", nargs="*", default=["experiment=fewshot_banking77"])
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2])
    ap.add_argument("--c", type=float, nargs="+", default=[1, 10, 100, 1000])
    ap.add_argument("--held-out", type=int, default=1500)
    args = ap.parse_args()
    cfg = compose_config([f"data.root={args.data_root}", *args.overrides])
    ((name, task),) = cfg.task.items()
    full = load_task(resolve_task(name, task), cfg.data)
    path = resolve_model_path(cfg.model.name_or_path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    encoder = AutoModel.from_pretrained(path).eval()
    print("seed " + " ".join(f"C={c:g}" for c in args.c))
    for seed in args.seeds:
        support = apply_few_shot(full, resolve_task(full.name, task), cfg.few_shot, seed, None)[
            0
        ].splits["train"]
        taken = set(support.inputs)
        train = full.splits["train"]
        rest = [i for i, t in enumerate(train.inputs) if t not in taken]
        held = np.random.default_rng(seed).choice(rest, min(args.held_out, len(rest)), False)
        x = states(support.inputs, tokenizer, encoder, cfg.model.max_length)
        xh = states([train.inputs[i] for i in held], tokenizer, encoder, cfg.model.max_length)
        yh = np.array([train.targets[i] for i in held])
        scores = []
        for c in args.c:
            fit = LogisticRegression(C=c, max_iter=2000).fit(x, support.targets)
            scores.append(100 * float((fit.predict(xh) == yh).mean()))
        print(f"{seed} " + " ".join(f"{s:.2f}" for s in scores), flush=True)


if __name__ == "__main__":
    main()
