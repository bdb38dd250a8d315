"""What a masked LM scores without using its context: the two floors a run must get below.

fairseq's masked-LM loss is over the *selected* tokens (``--mask-prob``, 15%), of which 80% are
replaced by ``<mask>``, 10% left unchanged (``--leave-unmasked-prob``) and 10% replaced by a random
token (``--random-token-prob``). A model can lower that loss without reading the context at all:

* **unigram floor**: predict every selected token from the training set's token frequencies u
  (add-one smoothed). At a position whose input is ``<mask>`` this is the best context-free guess.
* **copy floor**: the best context-free predictor that also looks at the token it is given. At
  ``<mask>`` it predicts u; at a visible token x it predicts the posterior of the target t given x,

      p(t | x) = u(t) (p_keep [t = x] + p_rand r(x)) / (p_keep u(x) + p_rand r(x))

  where r is fairseq's replacement distribution (uniform over the non-special symbols, or the token
  counts with ``--freq-weighted-replacement``). With 80/10/10 it mostly copies x, which is right
  half the time; this is what fairseq's usual perplexity rewards without any context.

A run uses its context when its perplexity is below these floors: at positions where every selected
token is ``<mask>`` (the ``valid_mask_only`` subset) against the unigram floor, and fairseq's usual
number against the copy floor. ``MaskedLmWithAccuracyLoss`` logs both floors on the exact positions
and inputs of every validation batch (``unigram_floor_ppl``, ``copy_floor_ppl``).
"""

import numpy as np
import torch


def unigram_log_probs(counts: np.ndarray) -> torch.Tensor:
    """log u: add-one smoothed frequencies over the whole dictionary (a token unseen in training
    still gets a finite score), float64."""
    counts = np.asarray(counts, dtype=np.float64)
    return torch.from_numpy(np.log((counts + 1.0) / (counts.sum() + len(counts))))


def replacement_probs(dictionary, freq_weighted: bool) -> torch.Tensor:
    """r: fairseq's ``MaskTokensDataset`` draws random replacements from this distribution."""
    weights = np.array(dictionary.count, dtype=np.float64) if freq_weighted else np.ones(len(dictionary))
    weights[: dictionary.nspecial] = 0
    return torch.from_numpy(weights / weights.sum())


def floor_log_probs(targets: torch.Tensor, inputs: torch.Tensor, log_u: torch.Tensor, r: torch.Tensor,
                    mask_idx: int, p_keep: float, p_rand: float) -> (torch.Tensor, torch.Tensor):
    """(log u(t), log p_copy(t | x)) at each selected position: ``targets`` are the original tokens,
    ``inputs`` what the model was given there (``<mask>``, the token itself or a random one)."""
    targets, inputs = targets.long().cpu(), inputs.long().cpu()
    unigram = log_u[targets]
    u_t, u_x, r_x = unigram.exp(), log_u[inputs].exp(), r[inputs]
    same = (targets == inputs).double()
    visible = torch.log(u_t * (p_keep * same + p_rand * r_x)) - torch.log(p_keep * u_x + p_rand * r_x)
    # <mask> carries no information about t (r(<mask>) is the same for every t), nor does any input
    # when neither keeping nor replacing happens
    uninformative = (inputs == mask_idx) | torch.tensor(p_keep + p_rand == 0.0)
    copy = torch.where(uninformative, unigram, visible)
    return unigram, copy


def token_counts(tokens: np.ndarray, vocabulary_size: int) -> np.ndarray:
    return np.bincount(np.asarray(tokens, dtype=np.int64).ravel(), minlength=vocabulary_size)[:vocabulary_size]
