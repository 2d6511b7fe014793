"""In-context learning evaluation throughput: mtfsl's scorer (``icl/scoring.py``: the prompt's
KV cache shared by every label, and the leading tokens a prompt shares with the previous one
not run again) against the plain way with Hugging Face transformers (one whole forward over
prompt + label per label, as lm-evaluation-harness scores ``loglikelihood`` requests), in one
process on the same prompts.

SST-2 (GLUE dev as test), ``few_shot.k`` per class from the training split (per_class draw,
the run's seed), the shipped prompt (``configs/prompt/default.yaml``), both demonstration
selections: FIXED (one order for every example: the demonstrations are shared) and RANDOM
(a fresh order per example: only the candidates share the prompt). Prints examples/s of
each side, the ratio, and how many predictions differ (they must not: same definitions).

With ``--generation N``: entity tagging by generation instead (CoNLL-2003, the Huang et al.
5-shot split 0 as demonstrations in one order, N test sentences, greedy, 64 new tokens at
most): ``generate`` reusing the previous prompt's KV cache for the demonstrations against the
same HF ``generate`` over the whole prompt, outputs compared.

Usage:  python scripts/bench_icl.py [--data ../shared/data] [--model smollm2] [--k 5]
            [--examples 100] [--generation N] [--out bench_icl.json]
"""

from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch


def prompts(model_name: str, data: Path, k: int, n: int, selection: str, seed: int = 42):
    """(model, tokenizer, [(prompt ids, continuation ids, gold label index)] for n examples)."""
    from mtfsl.config import DemoSelection
    from mtfsl.icl.method import SCORERS, demonstrations
    from mtfsl.icl.prompts import Prompter, prompt_config, verbalized
    from mtfsl.icl.scoring import encode
    from mtfsl.job import load_data
    from mtfsl.model.encoder import build_causal_lm
    from mtfsl.resolve import compose_config, resolve_tasks, settle

    overrides = [f"model={model_name}", "task=sst2", f"data.root={data}", f"few_shot.k={k}"]
    cfg = settle(compose_config([*overrides, "few_shot.method=icl"]))
    torch.manual_seed(seed)
    model, tok = build_causal_lm(cfg.model)
    task = load_data(cfg, resolve_tasks(cfg), None)["sst2"]
    prompter = Prompter("prompt.sst2", prompt_config("sst2", cfg.prompt["sst2"]))
    words = verbalized(prompter.cfg, task.labels)
    scorer = SCORERS["classification"]
    demos = demonstrations(prompter, scorer, task, seed)  # as a run renders them
    test = task.splits["test"]
    items = []
    for i in range(min(n, len(test))):
        order = demos.order(DemoSelection[selection], i)
        text = prompter.prompt(
            [demos.texts[j] for j in order], prompter.query(scorer.fields(test.inputs[i]))
        )
        prefix, conts = encode(tok, text, [prompter.continuation(w) for w in words])
        items.append((prefix, conts, task.labels.index(test.targets[i])))
    return model, items


@torch.no_grad()
def plain_hf(model, items) -> list[int]:
    """One forward of the HF model per (prompt, label): the baseline."""
    preds = []
    for prefix, conts, _ in items:
        sums = []
        for cont in conts:
            ids = torch.tensor([prefix + cont])
            logprobs = model(input_ids=ids).logits[0, len(prefix) - 1 : -1].float().log_softmax(-1)
            sums.append(float(logprobs.gather(-1, ids[0, len(prefix) :, None]).sum()))
        preds.append(max(range(len(sums)), key=sums.__getitem__))
    return preds


def mtfsl_scorer(model, items) -> list[int]:
    from mtfsl.icl.scoring import PrefixScorer

    scorer = PrefixScorer(model, batch_size=32)
    preds = []
    for prefix, conts, _ in items:
        sums = scorer.score(prefix, conts)
        preds.append(max(range(len(sums)), key=sums.__getitem__))
    return preds


def generation_prompts(model_name: str, data: Path, n: int):
    """(model, tokenizer, prompter, [prompt ids] for n CoNLL test sentences, FIXED order)."""
    from mtfsl.config import DemoSelection
    from mtfsl.icl.common import IclContext, fitted
    from mtfsl.icl.method import SCORERS, demonstrations
    from mtfsl.icl.prompts import Prompter, prompt_config
    from mtfsl.job import load_data
    from mtfsl.model.encoder import build_causal_lm
    from mtfsl.resolve import compose_config, resolve_tasks, settle

    overrides = [f"model={model_name}", "experiment=fewshot_conll_huang", f"data.root={data}"]
    cfg = settle(compose_config([*overrides, "few_shot.method=icl"]))
    model, tok = build_causal_lm(cfg.model)
    task = load_data(cfg, resolve_tasks(cfg), None)["conll"]
    prompter = Prompter("prompt.conll", prompt_config("conll", cfg.prompt["conll"]))
    scorer = SCORERS["tagging"]
    demos = demonstrations(prompter, scorer, task, 42)
    ctx = IclContext(model, tok, cfg.few_shot.icl, model.config.max_position_embeddings)
    test, items = task.splits["test"], []
    for i in range(min(n, len(test))):
        order = demos.order(DemoSelection.FIXED, i)
        fields = scorer.fields(test.inputs[i])
        items.append(fitted(ctx, prompter, demos, order, fields, [], "bench", 64)[0])
    return model, tok, prompter, items


def bench_generation(args) -> dict:
    from mtfsl.icl.scoring import GenerationCache, generate

    model, tok, prompter, items = generation_prompts(args.model, args.data, args.generation)

    def run(reuse: bool) -> list[str]:
        cache = GenerationCache() if reuse else None
        return [generate(model, tok, p, 64, prompter, cache) for p in items]

    run(True), run(False)  # warm-up: the first prompt of each side
    ours, t_ours = timed(run, True)
    theirs, t_theirs = timed(run, False)
    result = {
        "sentences": len(items),
        "mean_prompt_tokens": sum(map(len, items)) / len(items),
        "reuse_sentences_per_s": len(items) / t_ours,
        "hf_generate_sentences_per_s": len(items) / t_theirs,
        "ratio": t_theirs / t_ours,
        "outputs_differing": sum(a != b for a, b in zip(ours, theirs, strict=True)),
    }
    print(
        f"generation {len(items)} sentences, {result['mean_prompt_tokens']:.0f} prompt tokens: "
        f"reuse {result['reuse_sentences_per_s']:.2f}/s, HF generate "
        f"{result['hf_generate_sentences_per_s']:.2f}/s, ratio {result['ratio']:.2f}x, "
        f"{result['outputs_differing']} outputs differ",
        flush=True,
    )
    return result


def timed(fn, *args):
    start = time.perf_counter()
    out = fn(*args)
    return out, time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_data = os.environ.get("MTFSL_DATA_ROOT", "../shared/data")
    parser.add_argument("--data", type=Path, default=Path(default_data))
    parser.add_argument("--model", default="smollm2")
    parser.add_argument("--k", type=int, default=5)
    parser.add_argument("--examples", type=int, default=100)
    parser.add_argument("--out", type=Path)
    parser.add_argument("--generation", type=int, default=0)
    args = parser.parse_args()
    results = {}
    if args.generation:
        results["generation"] = bench_generation(args)
    for selection in ("FIXED", "RANDOM") if not args.generation else ():
        model, items = prompts(args.model, args.data, args.k, args.examples, selection)
        mtfsl_scorer(model, items[:2])  # warm-up (allocator, kernels), both sides
        plain_hf(model, items[:2])
        ours, t_ours = timed(mtfsl_scorer, model, items)
        theirs, t_theirs = timed(plain_hf, model, items)
        differ = sum(a != b for a, b in zip(ours, theirs, strict=True))
        tokens = sum(len(p) for p, _, _ in items) / len(items)
        results[selection] = {
            "examples": len(items),
            "mean_prompt_tokens": tokens,
            "mtfsl_examples_per_s": len(items) / t_ours,
            "hf_plain_examples_per_s": len(items) / t_theirs,
            "ratio": t_theirs / t_ours,
            "predictions_differing": differ,
            "accuracy": 100
            * sum(p == g for p, (_, _, g) in zip(ours, items, strict=True))
            / len(items),
        }
        r = results[selection]
        print(
            f"{selection:6s} {len(items)} examples, {tokens:.0f} prompt tokens: mtfsl "
            f"{r['mtfsl_examples_per_s']:.2f}/s, HF plain {r['hf_plain_examples_per_s']:.2f}/s, "
            f"ratio {r['ratio']:.2f}x, {differ} predictions differ, accuracy {r['accuracy']:.1f}",
            flush=True,
        )
    if args.out:
        args.out.write_text(json.dumps({**results, "model": args.model, "k": args.k}, indent=2))


if __name__ == "__main__":
    main()
