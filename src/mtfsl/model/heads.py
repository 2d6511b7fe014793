"""Task heads: encoder states -> scores, a loss, and decoded predictions.

Which head a task gets is its kind's choice (``Kind.head``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from mtfsl.config import Pooling
from mtfsl.constants import IGNORE_INDEX
from mtfsl.model.crf import CRF

Batch = dict[str, torch.Tensor]


class TokenClassificationHead(nn.Module):
    """Dropout + linear layer over every sub-token; loss on labelled positions only."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float) -> None:
        super().__init__()
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels)

    def forward(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.classifier(self.dropout(hidden))

    def loss(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        # Mean over labelled words: first sub-tokens of owned words, not context or padding.
        return nn.functional.cross_entropy(
            scores.flatten(0, 1).float(), batch["labels"].flatten(), ignore_index=IGNORE_INDEX
        )

    def loss_units(self, batch: Batch) -> torch.Tensor:
        """What ``loss`` averages over (labelled words), to average it across processes."""
        return (batch["labels"] != IGNORE_INDEX).sum()

    def decode(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Predicted label id at every position, (B, T)."""
        return scores.argmax(-1)

    def probabilities(self, scores: torch.Tensor, batch: Batch, ids: torch.Tensor):
        """The probability of each decoded id (softmax over the labels), shaped like ``ids``;
        None for a head whose outputs are no distribution (a score, a span)."""
        return scores.float().softmax(-1).gather(-1, ids[..., None]).squeeze(-1)


def pack(values: torch.Tensor, select: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Move the selected positions of each row to its front, in order.

    Returns:
        (packed values (B, L, ...), mask (B, L)) with L the largest count of a row.
    """
    counts = select.sum(1)
    # a stable sort of "not selected" puts selected positions first, keeping their order
    order = torch.sort((~select).to(torch.int8), dim=1, stable=True).indices
    width = max(int(counts.max()), 1)
    order = order[:, :width]
    index = order.view(*order.shape, *([1] * (values.dim() - 2))).expand(-1, -1, *values.shape[2:])
    mask = torch.arange(width, device=values.device)[None, :] < counts[:, None]
    return values.gather(1, index), mask


def viterbi_words(crf: CRF, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
    """The CRF's best tag sequence over each row's words (first sub-tokens), as a tag id at
    every position (B, T); positions that are no word's first sub-token hold 0."""
    select = batch["word_index"] >= 0
    emissions, mask = pack(scores, select)
    path = crf.viterbi(emissions, mask | ~mask.any(1, keepdim=True))
    out = torch.zeros(select.shape, dtype=torch.long, device=scores.device)
    rows, cols = select.nonzero(as_tuple=True)
    out[rows, cols] = path[mask]
    return out


class CRFTokenHead(TokenClassificationHead):
    """Linear emissions over each word's first sub-token, a CRF over the word sequence."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float) -> None:
        super().__init__(hidden_size, num_labels, dropout)
        self.crf = CRF(num_labels)

    def loss(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        select = batch["labels"] != IGNORE_INDEX
        keep = select.any(1)  # rows without labelled words add nothing
        emissions, mask = pack(scores[keep], select[keep])
        tags, _ = pack(batch["labels"][keep].clamp(min=0), select[keep])
        return self.crf.nll(emissions, tags, mask)

    def loss_units(self, batch: Batch) -> torch.Tensor:
        return (batch["labels"] != IGNORE_INDEX).any(1).sum()  # the rows with a labelled word

    def decode(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        return viterbi_words(self.crf, scores, batch)

    def probabilities(self, scores: torch.Tensor, batch: Batch, ids: torch.Tensor):
        """Each word's marginal probability of its decoded tag under the CRF (over every tag
        sequence of its window), not a softmax of its emissions alone."""
        select = batch["word_index"] >= 0
        emissions, mask = pack(scores, select)
        marginals = self.crf.marginals(emissions, mask | ~mask.any(1, keepdim=True))
        tags, _ = pack(ids, select)
        chosen = marginals.gather(-1, tags[..., None]).squeeze(-1)
        out = torch.zeros(select.shape, dtype=torch.float, device=scores.device)
        rows, cols = select.nonzero(as_tuple=True)
        out[rows, cols] = chosen[mask]
        return out


class RowClassificationHead(nn.Module):
    """One label per row (example): cross-entropy over rows, argmax decoding."""

    def loss(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        return nn.functional.cross_entropy(scores.float(), batch["labels"])

    def loss_units(self, batch: Batch) -> torch.Tensor:
        return torch.tensor(len(batch["labels"]), device=batch["labels"].device)

    def decode(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        """Predicted label id per example, (B,)."""
        return scores.argmax(-1)

    def probabilities(self, scores: torch.Tensor, batch: Batch, ids: torch.Tensor):
        """The softmax probability of each example's decoded label, (B,)."""
        return scores.float().softmax(-1).gather(-1, ids[:, None]).squeeze(-1)


class DensePooler(nn.Module):
    """BERT's pooler (same parameter names): tanh(dense(first token's state))."""

    def __init__(self, hidden_size: int) -> None:
        super().__init__()
        self.dense = nn.Linear(hidden_size, hidden_size)

    def forward(self, first: torch.Tensor) -> torch.Tensor:
        return torch.tanh(self.dense(first))


def last_positions(mask: torch.Tensor) -> torch.Tensor:
    """(B,): the index of each row's last non-padding position (either padding side)."""
    positions = torch.arange(mask.shape[1], device=mask.device)
    return (positions * mask.bool()).argmax(1)


class SequenceClassificationHead(RowClassificationHead):
    """Pool the sub-token states (first token, last token, mean, or BERT's pooler), dropout,
    linear. With ``LAST`` pooling the linear layer has no bias, as in transformers' decoder
    classes (``LlamaForSequenceClassification.score``), so the head exports to them."""

    def __init__(self, hidden_size: int, num_labels: int, dropout: float, pooling: Pooling):
        super().__init__()
        if pooling is Pooling.AUTO:
            raise ValueError("pooling AUTO is settled by the backbone family before heads")
        self.pooling = pooling
        if pooling is Pooling.POOLER:
            self.pooler = DensePooler(hidden_size)
        self.dropout = nn.Dropout(dropout)
        self.classifier = nn.Linear(hidden_size, num_labels, bias=pooling is not Pooling.LAST)

    def pool(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        """(B, hidden): one state per example."""
        if self.pooling is Pooling.MEAN:
            mask = batch["attention_mask"][:, :, None].to(hidden.dtype)
            return (hidden * mask).sum(1) / mask.sum(1).clamp(min=1)
        if self.pooling is Pooling.POOLER:
            return self.pooler(hidden[:, 0])
        if self.pooling is Pooling.LAST:
            rows = torch.arange(len(hidden), device=hidden.device)
            return hidden[rows, last_positions(batch["attention_mask"])]
        return hidden[:, 0]

    def logits(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        """(B, labels), as ``AutoModelForSequenceClassification`` lays them out."""
        return self.classifier(self.dropout(self.pool(hidden, batch)))

    def forward(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.logits(hidden, batch)


class RegressionHead(SequenceClassificationHead):
    """A score per row: the pooled state through a linear layer to one value; MSE loss (the
    loss of ``BertForSequenceClassification`` with ``problem_type="regression"``)."""

    def __init__(self, hidden_size: int, dropout: float, pooling: Pooling):
        super().__init__(hidden_size, 1, dropout, pooling)

    def forward(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.logits(hidden, batch).squeeze(-1)  # HF's (B, 1): (B,)

    def loss(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        return nn.functional.mse_loss(scores.float(), batch["labels"].float())

    def decode(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The predicted score per example, (B,)."""
        return scores.float()

    def probabilities(self, scores: torch.Tensor, batch: Batch, ids: torch.Tensor) -> None:
        return None  # a score, not a distribution


class SpanHead(nn.Module):
    """A linear layer scoring each token as the answer's start and end (the layout of
    ``BertForQuestionAnswering.qa_outputs``); loss: the mean of the two cross-entropies.
    Decoding searches every span of context tokens of at most ``max_answer_length`` tokens
    (not only the top starts and ends) and returns the ``n_best`` best per window."""

    def __init__(self, hidden_size: int, max_answer_length: int, n_best: int):
        super().__init__()
        self.qa_outputs = nn.Linear(hidden_size, 2)
        self.max_answer_length, self.n_best = max_answer_length, n_best

    def forward(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        return self.qa_outputs(hidden)  # (B, T, 2): start and end logits

    def loss(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        start, end = scores.float().unbind(-1)
        ce = nn.functional.cross_entropy
        return (ce(start, batch["start_positions"]) + ce(end, batch["end_positions"])) / 2

    def loss_units(self, batch: Batch) -> torch.Tensor:
        return torch.tensor(len(batch["start_positions"]), device=batch["input_ids"].device)

    def probabilities(self, scores: torch.Tensor, batch: Batch, ids: torch.Tensor) -> None:
        return None  # a span's score is its logit sum (see decode)

    def decode(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        """(B, n, 3): the character start and end and the score of each window's n best
        spans, best first; a score of -inf marks no span (fewer than n exist)."""
        start, end = scores.float().unbind(-1)
        context = batch["context_mask"].bool()
        width = start.shape[1]
        pos = torch.arange(width, device=start.device)
        length = pos[None, :] - pos[:, None]  # end - start, (T, T)
        allowed = (length >= 0) & (length < self.max_answer_length)
        allowed = allowed[None] & context[:, :, None] & context[:, None, :]
        spans = (start[:, :, None] + end[:, None, :]).masked_fill(~allowed, -torch.inf)
        top, index = spans.flatten(1).topk(min(self.n_best, width * width), dim=1)
        first = batch["offset_start"].gather(1, index // width)
        last = batch["offset_end"].gather(1, index % width)
        return torch.stack([first.float(), last.float(), top], dim=-1)


class PromptHead(RowClassificationHead):
    """PET / LM-BFF: the encoder's masked-LM head scores each label's verbalizer word at the
    (single) mask position of every row."""

    def __init__(self, mlm_head: nn.Module, mask_token_id: int, label_token_ids: list[int]):
        super().__init__()
        self.mlm_head = mlm_head
        self.mask_token_id = mask_token_id
        self.register_buffer("label_ids", torch.tensor(label_token_ids), persistent=False)

    def forward(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        at_mask = hidden[batch["input_ids"] == self.mask_token_id]  # (B, H): one mask per row
        return self.mlm_head(at_mask)[:, self.label_ids]


class NextWordHead(RowClassificationHead):
    """A prompt on a decoder (LM-BFF's scoring with a causal LM): the template ends where the
    label word would follow, and each label's score is the language-model head's logit of
    its verbalizer token at the template's last token. Only the verbalizers' rows of the
    LM head are kept, as a trainable copy: the whole head of a decoder is its vocabulary
    (often tied to the input embeddings), which LoRA keeps frozen and a checkpoint need not
    hold. A softmax over these rows is the LM's next-token distribution restricted to the
    label words (LM-BFF's training objective and its prediction)."""

    def __init__(self, lm_head: nn.Module, label_token_ids: list[int], tail: int):
        super().__init__()
        weight = lm_head.weight.detach()[label_token_ids]
        bias = getattr(lm_head, "bias", None)
        self.words = nn.Linear(weight.shape[1], len(label_token_ids), bias=bias is not None)
        with torch.no_grad():
            self.words.weight.copy_(weight)
            if bias is not None:
                self.words.bias.copy_(bias.detach()[label_token_ids])
        self.tail = tail  # special tokens the tokenizer appends after the template

    def forward(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        rows = torch.arange(hidden.shape[0], device=hidden.device)
        at = last_positions(batch["attention_mask"]) - self.tail
        return self.words(hidden[rows, at])


Head = (
    TokenClassificationHead
    | SequenceClassificationHead
    | RegressionHead
    | SpanHead
    | PromptHead
    | NextWordHead
)


@dataclass
class LanguageModelHead:
    """The head a PROMPT task scores verbalizer words with: ``next_word`` for a decoder's
    next-token head (the word follows the template), else an encoder's masked-LM head (the
    word fills the mask)."""

    module: nn.Module
    next_word: bool = False


@dataclass
class HeadContext:
    """What a PROMPT head needs beyond sizes: the model's language-model head (an encoder's
    masked-LM head; a decoder's next-token head) and token ids."""

    mlm_head: nn.Module | None = None
    mask_token_id: int | None = None  # None: a decoder, the word follows the template
    label_token_ids: list[int] = field(default_factory=list)
    tail: int = 0  # special tokens after the text (a decoder's template end is before them)
