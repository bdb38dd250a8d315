"""fairseq's masked-LM loss, plus the accuracy on the masked tokens and, in validation, the
context-free floors.

The loss (and its CPU/GPU/TPU handling of which tokens are projected to the vocabulary) is
fairseq's ``MaskedLmLoss`` unchanged. It computes the logits inside ``forward`` and returns only
the loss, so the logits are caught with a forward hook on the model rather than by copying that
method. Logged as ``accuracy`` (in %, over masked tokens) next to ``loss`` in train and valid, and
so in fairseq's log and TensorBoard. In validation (the model in eval mode) and with a task that
knows its training-set token counts (``linformer_masked_lm``), also ``unigram_floor_ppl`` and
``copy_floor_ppl``: the perplexity of the context-free predictors of ``context_free_floors`` on
exactly the positions and inputs of the batch, so a run's ``ppl`` can be read against them.
"""

import math
from dataclasses import dataclass

import torch
from fairseq import utils
from fairseq.criterions import register_criterion
from fairseq.criterions.masked_lm import MaskedLmConfig, MaskedLmLoss
from fairseq.logging import metrics

from .context_free_floors import floor_log_probs


@dataclass
class MaskedLmWithAccuracyConfig(MaskedLmConfig):
    pass


@register_criterion("masked_lm_with_accuracy", dataclass=MaskedLmWithAccuracyConfig)
class MaskedLmWithAccuracyLoss(MaskedLmLoss):
    def forward(self, model, sample, reduce=True):
        outputs = []
        hook = model.register_forward_hook(lambda _module, _inputs, output: outputs.append(output))
        try:
            loss, sample_size, logging_output = super().forward(model, sample, reduce=reduce)
        finally:
            hook.remove()
        logging_output["n_correct"] = self.count_correct(outputs[0][0], sample["target"])
        tables = getattr(self.task, "context_free_tables", None)
        if not model.training and tables is not None:
            logging_output.update(self.floor_losses(sample, tables()))
        return loss, sample_size, logging_output

    def floor_losses(self, sample, tables) -> dict:
        """Summed negative log-likelihoods (nats) of the two context-free floors on this batch."""
        selected = sample["target"].ne(self.padding_idx)
        unigram, copy = floor_log_probs(sample["target"][selected], sample["net_input"]["src_tokens"][selected],
                                        **tables)
        return {"unigram_floor_loss": -unigram.sum().item(), "copy_floor_loss": -copy.sum().item()}

    def count_correct(self, logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
        """Correct argmax predictions among the masked tokens (target != pad).

        ``MaskedLmLoss`` projects only the masked tokens (logits ``[n_masked, V]``), or every token
        when none is masked (on CUDA as ``[batch * length, V]``, on CPU and TPU as
        ``[batch, length, V]``); then nothing counts as correct, without a GPU sync to find out."""
        masked = target.ne(self.padding_idx)
        with torch.no_grad():
            predictions = logits.argmax(dim=-1)
            if predictions.numel() == target.numel():
                return ((predictions.view_as(target) == target) & masked).sum()
            return (predictions == target[masked]).sum()

    @staticmethod
    def reduce_metrics(logging_outputs) -> None:
        MaskedLmLoss.reduce_metrics(logging_outputs)
        n_masked = utils.item(sum(log.get("sample_size", 0) for log in logging_outputs))
        n_correct = utils.item(sum(log.get("n_correct", 0) for log in logging_outputs))
        if n_masked > 0:
            # weighted by the masked-token count, so an interval's value is its total correct / masked
            metrics.log_scalar("accuracy", 100.0 * n_correct / n_masked, n_masked, round=2)
        for floor in ("unigram_floor", "copy_floor"):
            if n_masked > 0 and any(f"{floor}_loss" in log for log in logging_outputs):
                total = sum(log.get(f"{floor}_loss", 0.0) for log in logging_outputs)
                # in bits, as fairseq's loss, so that ppl = 2 ** loss
                metrics.log_scalar(f"{floor}_loss", total / n_masked / math.log(2), n_masked, round=3)
                metrics.log_derived(f"{floor}_ppl", lambda meters, name=f"{floor}_loss": utils.get_perplexity(meters[name].avg))
