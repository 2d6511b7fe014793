"""Token tagging (NER, chunking, POS): a label per word, windows over long sentences, entity
F1 (seqeval, conlleval semantics) or tag accuracy, CoNLL prediction files."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

import numpy as np

from mtfsl.config import (
    Distance,
    LabelScheme,
    MetricMode,
    TagDecoder,
    TaskConfig,
    WordPiece,
)
from mtfsl.constants import IGNORE_INDEX
from mtfsl.data import augment
from mtfsl.data.context import document_ids, neighbour_context
from mtfsl.data.labels import bio_labels, entity_types, iob1_to_iob2, to_io, to_iob2
from mtfsl.data.splits import Split, warn_no_context
from mtfsl.errors import ConfigError, DataError
from mtfsl.evaluation.metrics import entity_scores, flatten, label_scores
from mtfsl.evaluation.report import split_report, tag_report, write_predictions
from mtfsl.kinds import register_kind
from mtfsl.kinds.base import Batch, TaskKind, label_name
from mtfsl.utils.text import word_problem

if TYPE_CHECKING:
    import torch
    from torch import nn


class TagMetric(Enum):
    """How a tagging task is scored."""

    ENTITY = "entity"  # seqeval chunks: precision/recall/f1 (primary f1) + token accuracy
    TAG_ACCURACY = "tag_accuracy"  # every token's tag: accuracy (primary) + macro_f1


class TrainTags(Enum):
    """The tags an entity task's head learns; predictions are always IOB2."""

    IOB2 = "iob2"  # B- and I- tags, as scored
    # The type alone, as I-TYPE (Few-NERD's IO scheme): a word inside an entity shares its
    # first word's tag, so a K-shot set's few inside words train the same class as the rest
    # (5-shot CoNLL split 0 has 4 I-ORG words to 12 B-ORG). The label set stays IOB2 (the
    # B- outputs are never a target, so never predicted); a run of words of one type reads
    # as one entity, so two adjacent entities of one type merge (rare in news text).
    IO = "io"


class TagObjective(Enum):
    """What trains the encoder of a tagging task."""

    CROSS_ENTROPY = "cross_entropy"  # the linear (or CRF) head's
    # CONTaiNER-style (Das et al. 2022) contrastive token learning with a supervised
    # contrastive loss (Khosla et al. 2020) over the labelled words of each batch: a word's
    # normalised state is pulled to those of the same tag, pushed from the others
    # (temperature ``contrastive_tau``); decode with PROTOTYPE, NEAREST or STRUCTSHOT.
    CONTRASTIVE = "contrastive"


@dataclass
class TaggingTaskConfig(TaskConfig):
    kind: str = "tagging"
    metric: TagMetric = TagMetric.ENTITY
    # Tagging scheme of the labels; AUTO detects IOB1 vs IOB2 (IOB1 is converted to IOB2).
    # NONE: plain per-token tags (POS), no chunk structure.
    label_scheme: LabelScheme = LabelScheme.AUTO
    crf: bool = False  # a CRF layer with Viterbi decoding instead of argmax
    # Few-shot NER decoders over the training words' states (model/metric_heads.py): the
    # head trains as the linear one, then tags by distance to the support words.
    decoder: TagDecoder = TagDecoder.LINEAR
    distance: Distance = Distance.EUCLIDEAN
    tau: float = 0.1  # STRUCTSHOT: temperature of the emission softmax
    objective: TagObjective = TagObjective.CROSS_ENTROPY
    contrastive_tau: float = 0.1  # CONTRASTIVE: temperature of the similarities
    # Only these entity types (after label_map); every other B-/I- tag is read as O, e.g.
    # tag-set extension: a run on [LOC, ORG, MISC], then K-shot on [PER]. Empty = all.
    only_types: list[str] = field(default_factory=list)
    train_tags: TrainTags = TrainTags.IOB2
    # A learned embedding of each word's shape (lower, Title, UPPER, mixed, number, other;
    # data/casing.py) added to its sub-tokens' input embeddings: the capitalisation an
    # uncased encoder's tokenizer removes. Starts at zero, so the encoder starts as shipped.
    case_features: bool = False
    # Where the words and the tags are: a column index (conll, csv/tsv without header) or a
    # field name (jsonl, csv/tsv header, datasets); null = the reader's default (conll: the
    # first and the last column; named fields: tokens and ner_tags, run_ner's layout).
    token_column: str | None = None
    label_column: str | None = None


def _rename(tag: str, renames: dict[str, str]) -> str:
    """``label_map`` applied to a whole tag, else to the type of a B-/I- tag."""
    if tag in renames:
        return renames[tag]
    prefix, sep, kind = tag.partition("-")
    if sep and prefix in ("B", "I") and kind in renames:
        return f"{prefix}-{renames[kind]}"
    return tag


def _kept(tags: list[str], types: list[str]) -> list[str]:
    """``only_types``: the B-/I- tags of other types read as O."""
    if not types:
        return tags
    return [t if t[:2] not in ("B-", "I-") or t[2:] in types else "O" for t in tags]


class TaggingKind(TaskKind):
    name = "tagging"
    schema = TaggingTaskConfig
    roles = ("tokens", "tags")
    label_role = "tags"
    token_level = True
    out_format = "conll"
    # a label and a word index per token (-1: not a word's first sub-token); case_ids
    # (case_features) pad with WordCase.NONE
    pad_values: ClassVar[dict[str, int]] = {"labels": IGNORE_INDEX, "word_index": -1, "case_ids": 0}

    def validate(self, key: str, task: TaggingTaskConfig) -> None:
        if task.crf and task.decoder is not TagDecoder.LINEAR:
            raise ConfigError(
                f"{key}.decoder={task.decoder.name}: decodes without the CRF; set {key}.crf=false"
            )
        if task.objective is TagObjective.CONTRASTIVE and task.decoder is TagDecoder.LINEAR:
            raise ConfigError(
                f"{key}.objective=CONTRASTIVE trains no linear layer: set {key}.decoder to "
                "PROTOTYPE, NEAREST or STRUCTSHOT (distances to the training words)"
            )
        if task.contrastive_tau <= 0:
            raise ConfigError(f"{key}.contrastive_tau={task.contrastive_tau}: expected > 0")
        if task.train_tags is TrainTags.IO and task.label_scheme is LabelScheme.NONE:
            raise ConfigError(f"{key}.train_tags=IO: entity types need a chunk scheme, not NONE")
        if task.train_tags is TrainTags.IO and task.decoder is TagDecoder.STRUCTSHOT:
            raise ConfigError(
                f"{key}.train_tags=IO: STRUCTSHOT's abstract transitions are O/B/I; decode "
                "with LINEAR, PROTOTYPE or NEAREST, or set train_tags=IOB2"
            )
        if task.only_types and task.label_scheme is LabelScheme.NONE:
            raise ConfigError(f"{key}.only_types: entity types need a chunk scheme, not NONE")
        if task.tau <= 0:
            raise ConfigError(f"{key}.tau={task.tau}: expected > 0")
        if task.metric is TagMetric.ENTITY and task.label_scheme is LabelScheme.NONE:
            raise ConfigError(
                f"{key}.label_scheme=NONE: expected an IOB scheme (or AUTO) for metric ENTITY"
            )

    def columns(self, key: str, task: TaggingTaskConfig) -> dict[str, Any]:
        from mtfsl.data.readers.base import Column

        return {
            "tokens": Column(f"{key}.token_column", task.token_column, "tokens"),
            "tags": Column(f"{key}.label_column", task.label_column, "ner_tags"),
        }

    def metric_names(self, task: TaggingTaskConfig) -> frozenset[str]:
        if task.metric is TagMetric.ENTITY:
            return frozenset({"f1", "precision", "recall", "accuracy"})
        return frozenset({"accuracy", "macro_f1"})

    def default_metric(self, task: TaggingTaskConfig) -> str:
        return "f1" if task.metric is TagMetric.ENTITY else "accuracy"

    # -- data ----------------------------------------------------------------------------
    def to_split(self, records: Any, task: TaggingTaskConfig) -> Split:
        words, tags, lines, docs = [], [], [], []
        names = records.names.get("tags") or task.label_names
        for record in records.rows:
            where = records.at(record)
            tokens, labels = record.values["tokens"], record.values["tags"]
            if not (isinstance(tokens, list) and tokens):
                raise DataError(
                    f"{where}: expected a non-empty list of word strings, found {tokens!r:.80}"
                )
            for j, word in enumerate(tokens):
                if (problem := word_problem(word)) is not None:
                    raise DataError(f"{where} (token {j + 1}): {problem}")
            if not isinstance(labels, list) or len(labels) != len(tokens):
                n = len(labels) if isinstance(labels, list) else labels
                raise DataError(f"{where}: {len(tokens)} words but tags {n!r:.80}")
            labels = [
                label_name(t, names, f"{where} (token {j + 1})") for j, t in enumerate(labels)
            ]
            words.append(tokens)
            tags.append(_kept([_rename(t, task.label_map) for t in labels], task.only_types))
            lines.append(record.line)
            docs.append(record.doc)
        split = Split(
            records.path,
            words,
            tags,
            lines,
            document_ids(docs),
            token_lines=records.token_lines,
            rows=records.by_row,
        )
        if task.label_scheme is not LabelScheme.NONE:
            split.targets = to_iob2(tags, task.label_scheme, str(split.path), lines, split.at)
        return split

    def derive_labels(self, task: TaggingTaskConfig, train: Split) -> list[str]:
        if task.label_scheme is not LabelScheme.NONE:
            return bio_labels(entity_types(train.targets))
        return super().derive_labels(task, train)

    def labelled(self, split: Split):
        for i, tags in enumerate(split.targets):
            for position, tag in enumerate(tags):
                yield tag, i, position

    def label_counts(self, split: Split) -> dict[str, int]:
        from mtfsl.data.kshot import mention_counts

        counts: dict[str, int] = {}
        for tags in split.targets:
            for kind, n in mention_counts(tags).items():
                counts[kind] = counts.get(kind, 0) + n
        return dict(sorted(counts.items()))

    def attach_context(self, split: Split, n: int, task_name: str) -> None:
        if n <= 0:
            return
        if not split.docs:
            warn_no_context(str(split.path), n, task_name, "no document boundaries")
            return
        split.context = neighbour_context(split.inputs, split.docs, n)

    def samplers(self, task: TaggingTaskConfig) -> frozenset[str]:
        if task.metric is TagMetric.ENTITY:
            return frozenset({"greedy", "exact", "sentences_per_type", "split_file"})
        # per-word tags (part of speech): every sentence has every word tagged, so there is
        # nothing to balance: K sentences drawn at random
        return frozenset({"random", "split_file"})

    def default_sampler(self, task: TaggingTaskConfig) -> str | None:
        return "greedy" if task.metric is TagMetric.ENTITY else "random"

    def augmentations(self, task: TaggingTaskConfig) -> frozenset[str]:
        return augment.NER if task.metric is TagMetric.ENTITY else frozenset()

    def augment(self, split: Split, cfg: Any, seed: int, rewriters: Any):
        return augment.augment_split(split, cfg, seed)

    # -- model ---------------------------------------------------------------------------
    def head(
        self, task: TaggingTaskConfig, hidden: int, num_labels: int, dropout: float, context: Any
    ) -> nn.Module:
        from mtfsl.model.heads import CRFTokenHead, TokenClassificationHead

        if task.decoder is not TagDecoder.LINEAR:
            from mtfsl.model.metric_heads import MetricTokenHead

            labels = context  # head_context: StructShot's transitions need the tag names
            contrastive = (
                task.contrastive_tau if task.objective is TagObjective.CONTRASTIVE else None
            )
            return MetricTokenHead(
                hidden, labels, dropout, task.decoder, task.distance, task.tau, contrastive
            )
        cls = CRFTokenHead if task.crf else TokenClassificationHead
        return cls(hidden, num_labels, dropout)

    def head_context(self, name, task, labels, tokenizer, mlm):
        return list(labels) if task.decoder is not TagDecoder.LINEAR else None

    def label_ids(self, split: Split, labels: list[str], io: bool = False) -> list[Any]:
        """Each tag's id in ``labels``; ``io``: of the tag in the IO scheme (B-X as I-X)."""
        index = {label: i for i, label in enumerate(labels)}
        read = to_io if io else str
        return [[index[read(t)] for t in tags] for tags in split.targets]

    def features(self, split, task, name, labels, tokenizer, model, cache_dir):
        from mtfsl.data.features import featurize_words

        return featurize_words(
            split.inputs,
            self.label_ids(split, labels, io=task.train_tags is TrainTags.IO),
            tokenizer,
            model.max_length,
            model.stride,
            cache_dir,
            split.context,
            task.case_features,
            model.word_piece is WordPiece.LAST,
        )

    def input_embeddings(self, task: TaggingTaskConfig) -> dict[str, int]:
        from mtfsl.data.casing import CASE_VOCAB

        return {"case_ids": CASE_VOCAB} if task.case_features else {}

    # -- evaluation ----------------------------------------------------------------------
    def owned(self, batch: Batch, ids: torch.Tensor) -> np.ndarray:
        """Windows own disjoint words, so each word appears once over all batches."""
        import torch

        owned = batch["word_index"] >= 0
        sentence = batch["sentence"][:, None].expand_as(owned)[owned]
        rows = [sentence, batch["word_index"][owned], ids[owned]]
        if ids.is_floating_point():  # probabilities rather than label ids
            rows = [r.double() for r in rows]
        return torch.stack(rows, dim=1).cpu().numpy()

    def empty_predictions(self, split: Split) -> list[np.ndarray]:
        return [np.full(len(words), -1, np.int64) for words in split.inputs]

    def finish_predictions(self, preds: list[np.ndarray]) -> list[Any]:
        return preds

    def to_labels(self, task: TaggingTaskConfig, ids: list[Any], labels: list[str]) -> list[Any]:
        tags = [[labels[i] for i in p] for p in ids]
        if task.train_tags is TrainTags.IO:  # a run of I-X words is one entity: B-X first
            return [iob1_to_iob2(t) for t in tags]
        return tags

    def score(self, task: TaggingTaskConfig, gold, pred, mode: MetricMode) -> dict:
        if task.metric is TagMetric.ENTITY:
            return entity_scores(gold, pred, mode)
        return label_scores(flatten(gold), flatten(pred))

    def report(self, task, split, name, gold, pred, labels, mode) -> str:
        make = split_report if task.metric is TagMetric.ENTITY else tag_report
        return make(split, name, gold, pred, labels, mode)

    def write_predictions(self, path: Path, split: Split, pred: list[Any]) -> None:
        write_predictions(path.with_name(f"{path.name}.conll"), split.inputs, split.targets, pred)

    # -- export and prediction -----------------------------------------------------------
    def export_model(self, task, name, head, encoder, config):
        if task.crf:
            raise ConfigError(
                f"export: task '{name}' has a CRF head, which no standard HF class holds (a "
                "pipeline would tag without it); --format onnx exports it"
            )
        return self.token_model(name, task, head, config)

    def onnx_model(self, task, name, head, encoder, config):
        if task.crf:
            # The CRF's emissions are the linear layer's scores, the HF class's logits. Its
            # own scores go into config.json, so the folder alone can decode (README).
            config.crf = head.crf.scores()
        return self.token_model(name, task, head, config)

    @staticmethod
    def token_model(name: str, task: Any, head: nn.Module, config: Any) -> nn.Module:
        """The linear head as ``AutoModelForTokenClassification``."""
        from transformers import AutoModelForTokenClassification

        if task.decoder is not TagDecoder.LINEAR or task.case_features:
            what = "case_features" if task.case_features else f"a {task.decoder.name} decoder"
            raise ConfigError(
                f"export: task '{name}' has {what}, which no standard HF class holds; "
                "exportable are linear token heads over the encoder's own inputs"
            )
        model = AutoModelForTokenClassification.from_config(config)
        # BERT's layer is ``classifier``, a decoder class's ``score``: the same linear layer
        output = model.classifier if hasattr(model, "classifier") else model.score
        output.load_state_dict(head.get_submodule("classifier").state_dict())
        return model

    def placeholder(self, item: Any, labels: list[str]) -> Any:
        return [labels[0]] * len(item)

    def raw_input(self, line: str, split_words: Any):
        pieces = split_words(line)
        return [w for w, _ in pieces], [s for _, s in pieces]

    def input_of(self, values: dict[str, Any]) -> tuple[Any, str, list[tuple[int, int]]]:
        words = values["tokens"]
        if not (isinstance(words, list) and all(isinstance(w, str) for w in words)):
            raise DataError(
                f"expected a list of words for a tagging task, found {words!r:.60}; read its "
                "input with --format conll, jsonl or text"
            )
        for j, word in enumerate(words):
            if (problem := word_problem(word)) is not None:
                raise DataError(f"token {j + 1}: {problem}")
        spans, start = [], 0
        for w in words:
            spans.append((start, start + len(w)))
            start += len(w) + 1
        return words, " ".join(words), spans

    def prediction_record(self, example: Any, pred: Any, prob: Any = None) -> dict[str, Any]:
        """Words, tags and entities with character offsets; with ``prob`` (each word's
        probability of its tag) also ``scores`` and each entity's mean over its words."""
        from seqeval.metrics.sequence_labeling import get_entities

        entities = []
        for kind, a, b in get_entities(pred):
            start, end = example.spans[a][0], example.spans[b][1]
            entity = {"type": kind, "start": start, "end": end, "text": example.text[start:end]}
            if prob is not None:
                entity["score"] = sum(prob[a : b + 1]) / (b + 1 - a)
            entities.append(entity)
        record = {"text": example.text, "words": example.item, "tags": pred}
        if prob is not None:
            record["scores"] = prob
        return {**record, "entities": entities}

    def write_rows(self, out: Any, examples: Any, pred: list[Any], fmt: str) -> None:
        for ex, tags in zip(examples, pred, strict=True):
            for j, (w, t) in enumerate(zip(ex.item, tags, strict=True)):
                if fmt == "tsv":
                    out.write(f"{w}\t{t}\n")
                else:
                    out.write(f"{w} {ex.gold[j]} {t}\n" if ex.gold else f"{w} {t}\n")
            out.write("\n")


register_kind(TaggingKind())
