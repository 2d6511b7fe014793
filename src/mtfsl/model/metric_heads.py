"""Metric-based NER decoding over the encoder's word states (few-shot NER's standard baselines).

The head trains as the linear head does (fine-tuning on the support set, or not at all with
a frozen encoder); at evaluation it tags each word by its distance to the support set: the
states and tags of every labelled word of the training split, as the encoder maps them at
that moment. ``remember`` stores them (buffers: they are saved with the checkpoint, so
``mtfsl-predict`` decodes without the training data).

- ``PROTOTYPE`` (ProtoBERT; Snell et al. 2017 as used by Ding et al. 2021): a word's score
  for a tag is minus its distance to the tag's centroid;
- ``NEAREST`` (NNShot; Yang & Katiyar 2020): minus its distance to the nearest support word
  of that tag;
- ``STRUCTSHOT`` (Yang & Katiyar 2020): NNShot's scores as emissions (a softmax at
  temperature ``tau``) and abstract O/B/I transitions estimated from the support tags,
  decoded by Viterbi.

Written here: no maintained package implements these decoders over a Hugging Face encoder.

``MetricTextHead`` does the same for one label per text (classification and text pairs):
the nearest class centroid, or scikit-learn's logistic regression fit on the support's
normalised states (SetFit's head), optionally with SetFit's pair objective training the
encoder.
"""

from __future__ import annotations

import itertools

import torch
from torch import nn

from mtfsl.config import Distance, Pooling, TagDecoder, TextDecoder
from mtfsl.constants import IGNORE_INDEX
from mtfsl.model.crf import CRF
from mtfsl.model.heads import (
    Batch,
    SequenceClassificationHead,
    TokenClassificationHead,
    viterbi_words,
)


def distances(states: torch.Tensor, support: torch.Tensor, kind: Distance) -> torch.Tensor:
    """(N, M) distances between N states and M support states."""
    if kind is Distance.COSINE:
        a = nn.functional.normalize(states, dim=-1)
        b = nn.functional.normalize(support, dim=-1)
        return 1 - a @ b.T
    squared = states.pow(2).sum(-1, keepdim=True) - 2 * states @ support.T
    return (squared + support.pow(2).sum(-1)[None, :]).clamp(min=0)


def abstract_transitions(sequences: list[list[int]], labels: list[str]) -> torch.Tensor:
    """Log transition probabilities (from, to) between IOB2 tags, from abstract counts over
    the support's tag sequences (add-one smoothed): O->O, O->B, B/I->O, B/I->B of the same or
    another type, B/I->I of the same type. Each abstract probability is shared among the tags
    it stands for; I after O or after another type stays impossible (IOB2)."""
    types = sorted({t[2:] for t in labels if t[:2] in ("B-", "I-")})

    def abstract(previous: str, tag: str) -> str:
        if tag == "O":
            return "O" if previous == "O" else "X-O"
        same = previous != "O" and previous[2:] == tag[2:]
        if tag.startswith("B-"):
            return "O-B" if previous == "O" else ("X-B-same" if same else "X-B-other")
        return "X-I-same" if same else "invalid"

    names = ["O", "O-B", "X-O", "X-B-same", "X-B-other", "X-I-same"]
    counts = dict.fromkeys(names, 1.0)
    for tags in sequences:
        for a, b in itertools.pairwise(tags):
            kind = abstract(labels[a], labels[b])
            if kind in counts:
                counts[kind] += 1
    from_o = counts["O"] + counts["O-B"]
    from_x = counts["X-O"] + counts["X-B-same"] + counts["X-B-other"] + counts["X-I-same"]
    others = max(len(types) - 1, 1)
    share = {
        "O": counts["O"] / from_o,
        "O-B": counts["O-B"] / from_o / len(types),
        "X-O": counts["X-O"] / from_x,
        "X-B-same": counts["X-B-same"] / from_x,
        "X-B-other": counts["X-B-other"] / from_x / others,
        "X-I-same": counts["X-I-same"] / from_x,
    }
    table = torch.full((len(labels), len(labels)), float("-inf"))
    for i, a in enumerate(labels):
        for j, b in enumerate(labels):
            kind = abstract(
                a if a[:2] in ("B-", "I-") else "O", b if b[:2] in ("B-", "I-") else "O"
            )
            if kind in share:
                table[i, j] = float(torch.tensor(share[kind]).log())
    return table


def resize_buffers(head: nn.Module, names: tuple[str, ...], state_dict: dict, prefix: str):
    """Give a head's support buffers the stored sizes (a new head starts with empty ones)."""
    for name in names:
        if prefix + name in state_dict:
            setattr(head, name, torch.empty_like(state_dict[prefix + name]))


class MetricTokenHead(TokenClassificationHead):
    """Trains as ``TokenClassificationHead``; evaluates by distance to the support words."""

    uses_support = True

    def __init__(
        self,
        hidden_size: int,
        labels: list[str],
        dropout: float,
        decoder: TagDecoder,
        distance: Distance,
        tau: float,
        contrastive: float | None = None,
    ) -> None:
        super().__init__(hidden_size, len(labels), dropout)
        self.labels, self.decoder, self.distance, self.tau = labels, decoder, distance, tau
        # the temperature of supervised_contrastive_loss, which then trains the encoder alone
        self.contrastive = contrastive
        if contrastive is not None:
            self.classifier.requires_grad_(False)
        self.register_buffer("support", torch.zeros(0, hidden_size))
        self.register_buffer("support_tags", torch.zeros(0, dtype=torch.long))
        self.crf = CRF(len(labels)) if decoder is TagDecoder.STRUCTSHOT else None
        if self.crf is not None:
            self.crf.requires_grad_(False)  # set from the support's tags, never trained

    def support_rows(self, hidden: torch.Tensor, batch: Batch):
        """What one batch of the training split adds to the support: the states and tags of
        its labelled words, and each sentence's tag sequence."""
        labelled = batch["labels"] != IGNORE_INDEX
        rows = zip(batch["labels"], labelled, strict=True)
        return hidden[labelled], batch["labels"][labelled], [r[k].tolist() for r, k in rows]

    @torch.no_grad()
    def remember(self, states: torch.Tensor, tags: torch.Tensor, sequences: list[list[int]]):
        """The support: every labelled word's state and tag (and, for StructShot, the tag
        sequences its transitions are estimated from)."""
        self.support = states.float()
        self.support_tags = tags.long()
        if self.crf is not None:
            table = abstract_transitions(sequences, self.labels).to(states.device)
            self.crf.transitions.copy_(table)
            # a sentence starts as if after O, and may end after any tag
            self.crf.start.copy_(table[self.labels.index("O")] if "O" in self.labels else 0)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        resize_buffers(self, ("support", "support_tags"), state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def forward(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        if self.training and self.contrastive is not None:
            return hidden  # what supervised_contrastive_loss compares
        if self.training or not len(self.support):
            return super().forward(hidden, batch)
        return self.scores(hidden.float())

    def loss(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        if self.contrastive is None:
            return super().loss(scores, batch)
        labelled = batch["labels"] != IGNORE_INDEX
        states = scores[labelled].float()
        return supervised_contrastive_loss(states, batch["labels"][labelled], self.contrastive)

    def scores(self, hidden: torch.Tensor) -> torch.Tensor:
        """(B, T, labels): minus the distance to each tag's centroid or nearest support word;
        -inf for a tag the support lacks."""
        flat = hidden.flatten(0, 1)
        n = len(self.labels)
        out = torch.full((flat.shape[0], n), float("-inf"), device=hidden.device)
        present = torch.unique(self.support_tags)
        if self.decoder is TagDecoder.PROTOTYPE:
            sums = torch.zeros(n, flat.shape[1], device=hidden.device)
            sums.index_add_(0, self.support_tags, self.support)
            counts = torch.bincount(self.support_tags, minlength=n).clamp(min=1)[:, None]
            centroids = (sums / counts)[present]
            out[:, present] = -distances(flat, centroids, self.distance)
        else:
            for start in range(0, len(self.support), 4096):  # bounded memory on large support
                block = -distances(flat, self.support[start : start + 4096], self.distance)
                tags = self.support_tags[start : start + 4096]
                index = tags[None, :].expand_as(block)
                out = out.scatter_reduce(1, index, block, reduce="amax", include_self=True)
        return out.view(*hidden.shape[:2], n)

    def decode(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        if self.crf is None or self.training or not len(self.support):
            return scores.argmax(-1)
        return viterbi_words(self.crf, (scores / self.tau).log_softmax(-1), batch)

    def probabilities(self, scores: torch.Tensor, batch: Batch, ids: torch.Tensor):
        """Softmax over minus the distances (ProtoBERT's distribution; for StructShot its
        emissions' at temperature ``tau``)."""
        scale = self.tau if self.crf is not None else 1.0
        return (scores.float() / scale).softmax(-1).gather(-1, ids[..., None]).squeeze(-1)


def supervised_contrastive_loss(states: torch.Tensor, tags: torch.Tensor, tau: float):
    """Khosla et al. (2020)'s supervised contrastive loss over N word states: for each word
    with another of its tag, minus the mean log-probability of those words in a softmax
    (temperature ``tau``) over the cosine similarities to all the other words; averaged over
    such words. Written here: neither torch nor sentence-transformers has it, and it is a
    few lines over a similarity matrix."""
    z = nn.functional.normalize(states, dim=-1)
    logits = (z @ z.T) / tau
    self_mask = torch.eye(len(tags), dtype=torch.bool, device=tags.device)
    logits = logits.masked_fill(self_mask, float("-inf"))
    log_prob = logits - logits.logsumexp(dim=1, keepdim=True)
    positive = (tags[:, None] == tags[None, :]) & ~self_mask
    counts = positive.sum(1)
    anchors = counts > 0
    if not anchors.any():  # no two words share a tag: nothing to pull together
        return states.sum() * 0.0
    mean_positive = log_prob.masked_fill(~positive, 0.0).sum(1)[anchors] / counts[anchors]
    return -mean_positive.mean()


def pair_loss(states: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """SetFit's objective on one batch: every pair of its texts, cosine similarity regressed
    to 1 (same label) or 0 (sentence-transformers' ``CosineSimilarityLoss``); the rarer kind
    of pair is repeated to as many as the other (SetFit's default ``oversampling``)."""
    from sentence_transformers.sentence_transformer.losses import CosineSimilarityLoss

    first, second = torch.triu_indices(len(labels), len(labels), 1, device=labels.device)
    same = labels[first] == labels[second]
    kinds = [torch.nonzero(same).flatten(), torch.nonzero(~same).flatten()]
    kinds = [k for k in kinds if len(k)]
    if not kinds:  # one text: no pair
        return states.sum() * 0.0
    most = max(len(k) for k in kinds)
    pairs = torch.cat([k[torch.arange(most, device=k.device) % len(k)] for k in kinds])
    loss = CosineSimilarityLoss(nn.Identity())  # its model is never called here
    target = same[pairs].float()
    return loss.compute_loss_from_embeddings([states[first[pairs]], states[second[pairs]]], target)


class MetricTextHead(SequenceClassificationHead):
    """Trains as ``SequenceClassificationHead`` (or, with ``pairs``, trains only the encoder
    by ``pair_loss``); evaluates by a classifier fit on the support's pooled states: minus
    the distance to each class centroid, or a logistic regression's logits. Classes the
    support lacks score -inf."""

    uses_support = True

    def __init__(
        self,
        hidden_size: int,
        num_labels: int,
        dropout: float,
        pooling: Pooling,
        decoder: TextDecoder,
        distance: Distance,
        pairs: bool,
        c: float = 1.0,
    ) -> None:
        super().__init__(hidden_size, num_labels, dropout, pooling)
        self.decoder, self.distance, self.pairs, self.c = decoder, distance, pairs, c
        if pairs:  # the objective trains the encoder only: no gradient, no update here
            self.classifier.requires_grad_(False)
        # the fitted classifier: class centroids, or the regression's weights; and a bias
        self.register_buffer("fitted_weight", torch.zeros(0, hidden_size))
        self.register_buffer("fitted_bias", torch.zeros(0))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        resize_buffers(self, ("fitted_weight", "fitted_bias"), state_dict, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def states(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        """The pooled states the fitted classifier reads; L2-normalised for the regression,
        as the sentence-transformer it stands on normalises its embeddings."""
        pooled = self.pool(hidden, batch).float()
        if self.decoder is TextDecoder.LOGISTIC:
            return nn.functional.normalize(pooled, dim=-1)
        return pooled

    def support_rows(self, hidden: torch.Tensor, batch: Batch):
        return self.states(hidden, batch), batch["labels"], []

    @torch.no_grad()
    def remember(self, states: torch.Tensor, tags: torch.Tensor, sequences: list[list[int]]):
        n = self.classifier.out_features
        present = torch.unique(tags)
        bias = torch.full((n,), float("-inf"), device=states.device)
        weight = torch.zeros(n, states.shape[1], device=states.device)
        if self.decoder is TextDecoder.CENTROID:
            weight.index_add_(0, tags, states)
            weight /= torch.bincount(tags, minlength=n).clamp(min=1)[:, None]
            bias[present] = 0.0
        elif len(present) == 1:  # nothing to regress: the one class wins
            bias[present] = 0.0
        else:
            weight[present], bias[present] = logistic_regression(states, tags, self.c)
        self.fitted_weight, self.fitted_bias = weight, bias

    def forward(self, hidden: torch.Tensor, batch: Batch) -> torch.Tensor:
        if self.training and self.pairs:
            return self.pool(hidden, batch)  # what pair_loss compares
        if self.training or not len(self.fitted_bias):
            return super().forward(hidden, batch)
        states = self.states(hidden, batch)
        if self.decoder is TextDecoder.CENTROID:
            return self.fitted_bias - distances(states, self.fitted_weight, self.distance)
        return states @ self.fitted_weight.T + self.fitted_bias

    def loss(self, scores: torch.Tensor, batch: Batch) -> torch.Tensor:
        if self.pairs:
            return pair_loss(scores.float(), batch["labels"])
        return super().loss(scores, batch)


def logistic_regression(states: torch.Tensor, tags: torch.Tensor, c: float = 1.0):
    """scikit-learn's ``LogisticRegression`` (SetFit's head; its defaults but ``C``) on the
    support, as (classes, hidden) weights and (classes,) biases of a softmax over the present
    classes in sorted order: the same probabilities as its ``predict_proba``."""
    from sklearn.linear_model import LogisticRegression

    fit = LogisticRegression(C=c, max_iter=1000).fit(states.cpu().numpy(), tags.cpu().numpy())
    weight = torch.as_tensor(fit.coef_, dtype=torch.float32)
    bias = torch.as_tensor(fit.intercept_, dtype=torch.float32)
    if len(fit.classes_) == 2:  # one decision function: logits (0, w.x + b) give its sigmoid
        weight = torch.cat([torch.zeros_like(weight), weight])
        bias = torch.cat([torch.zeros_like(bias), bias])
    return weight.to(states.device), bias.to(states.device)
