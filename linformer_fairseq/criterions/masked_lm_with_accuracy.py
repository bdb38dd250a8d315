"""fairseq's masked-LM loss, plus the accuracy of the predictions on the masked tokens.

The loss (and its CPU/GPU/TPU handling of which tokens are projected to the vocabulary) is
fairseq's ``MaskedLmLoss`` unchanged. It computes the logits inside ``forward`` and returns only
the loss, so the logits are caught with a forward hook on the model rather than by copying that
method. Logged as ``accuracy`` (in %, over masked tokens) next to ``loss`` in train and valid, and
so in fairseq's log and TensorBoard.
"""

from dataclasses import dataclass

import torch
from fairseq import utils
from fairseq.criterions import register_criterion
from fairseq.criterions.masked_lm import MaskedLmConfig, MaskedLmLoss
from fairseq.logging import metrics


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
        return loss, sample_size, logging_output

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
