"""Fit an example into the model's ``--max-positions``.

Budget. fairseq-preprocess appends ``</s>`` to every line it binarizes, and fairseq's
``sentence_prediction`` task, run as RoBERTa is fine-tuned (``--init-token 0 --separator-token 2``),
prepends ``<s>`` to input0 and ``</s>`` to input1::

    single sentence:  <s> a1..an </s>                    n + 2 positions
    sentence pair:    <s> a1..an </s> </s> b1..bm </s>   n + m + 4 positions

so the text budget is ``max_positions - 2`` tokens (``- 4`` for pairs). fairseq would otherwise
drop a longer training example and stop at a longer validation example.

Modes, for a text longer than its budget ``N``:

* ``head``: keep the first N tokens.
* ``tail``: keep the last N tokens.
* ``head+tail``: keep the first ``N // 4`` and the last ``N - N // 4`` tokens: the head+tail
  strategy of Sun et al. (2019), "How to Fine-Tune BERT for Text Classification?", which kept
  128 head + 382 tail of 510 tokens on IMDB and did best there.

Pairs: as in BERT, the longer text gives up tokens until the pair fits (so a short question keeps
all of its tokens); each text is then cut with the mode above.
"""
from typing import List, Optional, Sequence, Tuple

TRUNCATION_MODES = ("head", "tail", "head+tail")
SPECIAL_TOKENS = {False: 2, True: 4}  # positions fairseq adds around single texts / pairs


def truncate(tokens: Sequence[str], budget: int, mode: str) -> List[str]:
    tokens = list(tokens)
    if len(tokens) <= budget:
        return tokens
    if budget <= 0:
        return []
    if mode == "head":
        return tokens[:budget]
    if mode == "tail":
        return tokens[len(tokens) - budget :]
    if mode == "head+tail":
        head = budget // 4
        return tokens[:head] + tokens[len(tokens) - (budget - head) :]
    raise ValueError(f"truncation mode {mode!r}: expected one of {TRUNCATION_MODES}")


def pair_budgets(first: int, second: int, budget: int) -> Tuple[int, int]:
    """Tokens each text of a pair keeps: the longer one is shortened first (ties favour the first)."""
    if first + second <= budget:
        return first, second
    half = budget // 2
    if first <= half:
        return first, budget - first
    if second <= half:
        return budget - second, second
    return budget - half, half


def fit_example(texts: Sequence[Sequence[str]], budget: int, mode: str) -> Tuple[List[List[str]], bool]:
    """The example's token lists cut to ``budget`` tokens in total, and whether anything was cut."""
    if len(texts) == 1:
        kept = [truncate(texts[0], budget, mode)]
    else:
        first, second = pair_budgets(len(texts[0]), len(texts[1]), budget)
        kept = [truncate(texts[0], first, mode), truncate(texts[1], second, mode)]
    return kept, sum(map(len, kept)) < sum(map(len, texts))


def text_budget(max_positions: int, is_pair: bool, max_tokens: Optional[int] = None) -> int:
    """``max_tokens`` if given (checked against ``max_positions``), else the largest budget that fits."""
    limit = max_positions - SPECIAL_TOKENS[is_pair]
    if max_tokens is None:
        return limit
    if max_tokens > limit:
        raise ValueError(
            f"--max-tokens {max_tokens} does not fit --max-positions {max_positions}: fairseq adds "
            f"{SPECIAL_TOKENS[is_pair]} special tokens per {'pair' if is_pair else 'text'}, so at most {limit}"
        )
    return max_tokens
