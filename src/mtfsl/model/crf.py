"""A linear-chain CRF: negative log-likelihood by the forward algorithm, Viterbi decoding.

Small and self-contained (the maintained PyPI CRF packages are unmaintained or pull heavy
dependencies); tests check it against brute-force enumeration on small cases.
"""

from __future__ import annotations

import torch
from torch import nn


class CRF(nn.Module):
    """Transition scores between tags, plus start and end scores.

    All methods take ``emissions`` (B, L, C) and a boolean ``mask`` (B, L) whose True
    entries are a prefix of each row; every row must have at least one True entry.
    """

    def __init__(self, num_tags: int) -> None:
        super().__init__()
        self.start = nn.Parameter(torch.zeros(num_tags))
        self.end = nn.Parameter(torch.zeros(num_tags))
        self.transitions = nn.Parameter(torch.zeros(num_tags, num_tags))  # [from, to]

    def log_partition(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        score = self.start + emissions[:, 0]
        for i in range(1, emissions.shape[1]):
            step = torch.logsumexp(
                score[:, :, None] + self.transitions + emissions[:, i, None, :], dim=1
            )
            score = torch.where(mask[:, i, None], step, score)
        return torch.logsumexp(score + self.end, dim=1)

    def gold_score(
        self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor
    ) -> torch.Tensor:
        rows = torch.arange(emissions.shape[0], device=emissions.device)
        score = self.start[tags[:, 0]] + emissions[rows, 0, tags[:, 0]]
        for i in range(1, emissions.shape[1]):
            step = self.transitions[tags[:, i - 1], tags[:, i]] + emissions[rows, i, tags[:, i]]
            score = score + step * mask[:, i]
        last = tags[rows, mask.sum(1) - 1]
        return score + self.end[last]

    def nll(self, emissions: torch.Tensor, tags: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Mean negative log-likelihood of the gold tag sequences."""
        emissions = emissions.float()
        return (self.log_partition(emissions, mask) - self.gold_score(emissions, tags, mask)).mean()

    @torch.no_grad()
    def marginals(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """P(tag at position i = c | the row), (B, L, C), by the forward-backward algorithm;
        positions outside the mask hold the last real position's values."""
        emissions = emissions.float()
        length = emissions.shape[1]
        alphas = [self.start + emissions[:, 0]]
        for i in range(1, length):
            step = torch.logsumexp(
                alphas[-1][:, :, None] + self.transitions + emissions[:, i, None, :], dim=1
            )
            alphas.append(torch.where(mask[:, i, None], step, alphas[-1]))
        end = self.end.expand_as(alphas[0])
        betas = [end]  # from the last position back: the end score after a row's last tag
        for i in range(length - 2, -1, -1):
            step = torch.logsumexp(
                self.transitions + (emissions[:, i + 1] + betas[0])[:, None, :], dim=2
            )
            betas.insert(0, torch.where(mask[:, i + 1, None], step, end))
        log_z = torch.logsumexp(alphas[-1] + self.end, dim=1)
        return torch.exp(torch.stack(alphas, 1) + torch.stack(betas, 1) - log_z[:, None, None])

    @torch.no_grad()
    def viterbi(self, emissions: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """Best tag sequence per row, (B, L); positions outside the mask hold 0."""
        emissions = emissions.float()
        score = self.start + emissions[:, 0]
        pointers = []
        for i in range(1, emissions.shape[1]):
            best, arg = (score[:, :, None] + self.transitions).max(dim=1)
            step = best + emissions[:, i]
            pointers.append(arg)
            score = torch.where(mask[:, i, None], step, score)
        score = score + self.end
        lengths = mask.sum(1)
        out = torch.zeros(mask.shape, dtype=torch.long, device=emissions.device)
        tag = score.argmax(1)
        for i in range(emissions.shape[1] - 1, -1, -1):
            inside = i < lengths
            out[:, i] = torch.where(inside, tag, out[:, i])
            if i > 0:
                # only follow the pointer once we are inside the row's real length
                previous = pointers[i - 1].gather(1, tag[:, None]).squeeze(1)
                tag = torch.where(i <= lengths - 1, previous, tag)
        return out

    def scores(self) -> dict[str, list]:
        """``start``, ``end`` and ``transitions[from][to]`` as plain lists: what an exported
        CRF tagger's config.json holds, so Viterbi can run without mtfsl (README)."""
        return {name: getattr(self, name).tolist() for name in ("start", "end", "transitions")}
