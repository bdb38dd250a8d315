"""bf16 training as a cluster runs it, on the CPU: fairseq's trainer with ``common.bf16`` (the Hydra
key, which unlike the command line's ``--bf16`` does not switch on fairseq's TPU code).

What fairseq's bf16 path is meant to do, and what these tests hold it to: the model (ours included,
the projections E and F too) is cast to bf16, so activations and gradients are bf16;
``FP16Optimizer`` keeps an fp32 master copy of every parameter (one per parameter, not flattened,
for bf16) whose Adam moments are fp32 and updates it, then copies it back into the bf16 weights;
no loss scaling (bf16 has fp32's exponent range); the masked-LM loss is computed in fp32
(fairseq's ``cross_entropy`` takes ``log_softmax`` in fp32); checkpoints store fp32 weights.
Our attention's softmax runs in fp32 inside bf16 attention.

No fairseq patch is needed for any of this on the CPU (fairseq 0.12.3, torch 2.13).
"""

import json
import math
import os
import re
import subprocess
import sys

import pytest
import torch
import torch.nn.functional as F
from fairseq import tasks
from fairseq.dataclass.utils import convert_namespace_to_omegaconf
from fairseq.trainer import Trainer

from linformer_fairseq.modules import MultiheadLinearAttention
from tests.model_factory import parse

UPDATES = 6


def build_trainer(data, save_dir, bf16: bool):
    """fairseq-train's objects for the tiny Linformer (k = 8, n = 32) on sentence-per-sample
    batches, which are padded, so our padding path runs too. fairseq's trainer writes crash.pt
    into ``save_dir`` when a step fails."""
    args = parse(data, "--save-dir", save_dir, "--criterion", "masked_lm", "--optimizer", "adam", "--lr", "0.001", "--lr-scheduler", "fixed",
                 "--batch-size", "8", "--required-batch-size-multiple", "1", "--tokens-per-sample", "32",
                 "--max-positions", "32", "--compressed-dim", "8", "--sample-break-mode", "complete", "--clip-norm", "1.0",
                 "--seed", "1", "--dropout", "0", "--attention-dropout", "0")
    cfg = convert_namespace_to_omegaconf(args)
    cfg.common.bf16 = bf16  # common.bf16=true, as the launchers pass it
    task = tasks.setup_task(cfg.task)
    task.load_dataset("train", combine=False, epoch=1)
    torch.manual_seed(1)  # the same initial weights in both precisions
    model = task.build_model(cfg.model)
    trainer = Trainer(cfg, task, model, task.build_criterion(cfg.criterion))
    batches = trainer.get_train_iterator(epoch=1).next_epoch_itr(shuffle=False)
    return trainer, batches


def train(trainer, batches, updates=UPDATES):
    """Per-update masked-LM loss (nats per masked token, unrounded) of ``updates`` train steps."""
    losses = []
    hook = trainer.criterion.register_forward_hook(
        lambda module, inputs, output: losses.append(float(output[0]) / float(output[1])))
    try:
        for _, sample in zip(range(updates), batches):
            trainer.train_step([sample])
    finally:
        hook.remove()
    return losses


def test_bf16_training_through_fairseqs_trainer_stays_close_to_fp32(mlm_data, tmp_path):
    fp32 = train(*build_trainer(mlm_data, tmp_path, bf16=False))
    bf16 = train(*build_trainer(mlm_data, tmp_path, bf16=True))
    assert len(bf16) == len(fp32) == UPDATES
    assert all(math.isfinite(loss) for loss in bf16)
    for update, (low, full) in enumerate(zip(bf16, fp32)):
        assert abs(low - full) < 0.01 * full, (update, bf16, fp32)
    assert max(bf16[-2:]) < bf16[0]  # it learns


def test_bf16_dtypes_of_parameters_activations_gradients_and_optimizer_state(mlm_data, tmp_path, monkeypatch):
    trainer, batches = build_trainer(mlm_data, tmp_path, bf16=True)
    model, seen = trainer.model, {}
    encoder = model.encoder.sentence_encoder

    def record(name):
        def hook(module, inputs, output):
            seen.setdefault(name, output[0] if isinstance(output, tuple) else output)
        return hook

    encoder.layers[0].self_attn.register_forward_hook(record("attention output"))
    encoder.layers[-1].register_forward_hook(record("encoder layer output"))
    model.encoder.lm_head.register_forward_hook(record("LM logits"))
    trainer.criterion.register_forward_hook(record("loss"))  # (loss, sample_size, logging output)
    fused = F.scaled_dot_product_attention

    def attention_inputs(q, k, v, **kwargs):
        seen.setdefault("attention q, k, v", (q, k, v))
        return fused(q, k, v, **kwargs)

    monkeypatch.setattr(F, "scaled_dot_product_attention", attention_inputs)
    sample = next(iter(batches))
    assert sample["net_input"]["src_tokens"].eq(trainer.task.source_dictionary.pad()).any()  # padded batch
    trainer.train_step([sample])

    # weights and their gradients: bf16, ours' E and F included
    params = dict(model.named_parameters())
    assert any("compress_k" in name for name in params)
    assert {p.dtype for p in params.values()} == {torch.bfloat16}
    assert {p.grad.dtype for p in params.values() if p.grad is not None} == {torch.bfloat16}
    # activations bf16; the loss fp32
    q, k, v = seen.pop("attention q, k, v")
    assert {q.dtype, k.dtype, v.dtype} == {torch.bfloat16}
    assert seen.pop("loss").dtype == torch.float32
    assert {name: t.dtype for name, t in seen.items()} == dict.fromkeys(
        ("attention output", "encoder layer output", "LM logits"), torch.bfloat16)
    # the optimizer: fp32 master weights, one per parameter, with fp32 Adam moments; no loss scaler
    optimizer = trainer.optimizer
    assert type(optimizer).__name__ == "FP16Optimizer" and optimizer.scaler is None
    masters = optimizer.fp32_params
    assert [m.shape for m in masters] == [p.shape for p in params.values() if p.requires_grad]
    assert {m.dtype for m in masters} == {torch.float32}
    state = optimizer.optimizer.state
    assert set(state) == set(masters)
    assert {(name, value.dtype) for s in state.values() for name, value in s.items() if torch.is_tensor(value)
            and value.dim()} == {("exp_avg", torch.float32), ("exp_avg_sq", torch.float32)}
    # the bf16 weights are the master weights rounded
    for master, (name, weight) in zip(masters, params.items()):
        torch.testing.assert_close(weight, master.to(torch.bfloat16), rtol=0, atol=0, msg=name)
    # checkpoints store fp32 weights (fairseq casts them when saving)
    trainer.consolidate_optimizer()  # as fairseq's checkpoint_utils.save_checkpoint does first
    path = trainer.save_checkpoint(str(tmp_path / "checkpoint.pt"), {})
    saved = torch.load(path, map_location="cpu", weights_only=False)
    assert {v.dtype for v in saved["model"].values() if v.is_floating_point()} == {torch.float32}


def test_attention_weights_are_fp32_when_the_layer_runs_in_bf16():
    attention = MultiheadLinearAttention(32, 4, max_positions=24, compressed_dim=6).to(torch.bfloat16)
    x = torch.randn(24, 2, 32, dtype=torch.bfloat16)
    out, weights = attention(x, x, x, need_weights=True)
    assert out.dtype == torch.bfloat16 and weights.dtype == torch.float32


def test_fused_attention_in_bf16_takes_its_softmax_in_fp32(monkeypatch):
    """The fused path's output, from bf16 q, k, v, against softmax(q kᵀ / √d) v computed in float64
    from the same bf16 values: within bf16's rounding of the output. A large ``k_proj`` bias adds
    the same tens to every score of a query; the softmax does not change, but bf16 logits (8 bits
    of mantissa: steps of 0.25 from 32 on) lose the differences between keys, so a softmax in bf16
    misses by many times more (the second assertion shows it)."""
    torch.manual_seed(0)
    attention = MultiheadLinearAttention(64, 4, max_positions=32, compressed_dim=8).eval()
    with torch.no_grad():
        attention.q_proj.weight.mul_(4.0)
        attention.q_proj.bias.fill_(1.0)
        attention.k_proj.bias.copy_(6.0 * torch.randn(64))
    attention = attention.to(torch.bfloat16)
    captured = []
    fused = F.scaled_dot_product_attention

    def capture(q, k, v, **kwargs):
        out = fused(q, k, v, **kwargs)
        captured.append((q, k, v, kwargs["scale"], out))
        return out

    monkeypatch.setattr(F, "scaled_dot_product_attention", capture)
    x = torch.randn(32, 3, 64).to(torch.bfloat16)
    with torch.no_grad():
        attention(x, x, x)
    (q, k, v, scale, out), = captured
    scores = q.double() @ k.double().transpose(-1, -2) * scale
    assert scores.abs().max() > 32  # bf16's steps are 0.25 and more there
    exact = scores.softmax(-1) @ v.double()
    in_bf16 = (scores.to(torch.bfloat16).softmax(-1) @ v).double()  # what a bf16 softmax would give
    error, bf16_softmax_error = (out.double() - exact).abs().max(), (in_bf16 - exact).abs().max()
    assert error < 2 ** -8 * v.abs().max()  # the output's own rounding
    assert bf16_softmax_error > 5 * error


@pytest.mark.slow
def test_cpu_bf16_pretraining_through_the_launcher(mlm_data, tmp_path):
    """``CPU=1 PRECISION=bf16 linformer-pretrain ...`` (refused before: bf16 "needs a GPU") plans
    ``common.bf16=true`` and trains a few updates end to end: finite losses, a bf16 run without
    fairseq's TPU path, checkpoints of fp32 weights, and fp16 still refused on the CPU."""
    save_dir = tmp_path / "save"
    env = {name: value for name, value in os.environ.items()
           if name not in ("NPROC_PER_NODE", "LAUNCHER", "DRY_RUN") and not name.startswith("SLURM_")}
    env.update(CPU="1", PRECISION="bf16", OMP_NUM_THREADS="1")
    command = [os.path.join(os.path.dirname(sys.executable), "linformer-pretrain"), "tiny_n64_k16", mlm_data,
               str(save_dir), "optimization.max_update=6", "common.log_interval=1", "task.tokens_per_update=512",
               "checkpoint.save_interval_updates=3", "lr_scheduler.warmup_updates=2"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env, cwd=tmp_path)
    log = (save_dir / "train.log").read_text() if (save_dir / "train.log").exists() else ""
    assert done.returncode == 0, done.stderr[-3000:] + log[-3000:]
    assert "on 1 process(es) (torchrun, bf16)" in log and "common.bf16=true" in log and "common.cpu=true" in log
    losses = [float(v) for v in re.findall(r'train_inner \| \{.*?"loss": "([0-9.]+)"', log)]
    assert len(losses) == 6 and all(math.isfinite(v) for v in losses)
    saved = torch.load(save_dir / "checkpoint_last.pt", map_location="cpu", weights_only=False)
    assert saved["cfg"]["common"]["bf16"] and not saved["cfg"]["common"]["tpu"]
    assert saved["optimizer_history"][-1]["num_updates"] == 6
    assert {v.dtype for v in saved["model"].values() if v.is_floating_point()} == {torch.float32}
    # the training process recorded its own memory: host RSS, and no GPU number on the CPU
    used = json.loads((save_dir / "resources.json").read_text())
    assert used["ranks"]["0"]["peak_gpu_memory_gb"] is None and used["ranks"]["0"]["peak_host_rss_gb"] > 0.1
    assert used["peak_gpu_memory_gb"] is None and used["launches"] == 1

    refused = subprocess.run(command, capture_output=True, text=True, timeout=300, env=dict(env, PRECISION="fp16"))
    assert refused.returncode == 2
    assert refused.stderr.strip().splitlines()[-1] == \
        "pretrain: error: PRECISION=fp16 needs a GPU; use bf16 or fp32 with CPU=1"


def test_fairseqs_command_line_bf16_is_refused_in_one_line(mlm_data, tmp_path):
    """fairseq-train's ``--bf16`` switches on ``--tpu`` (fairseq 0.12): with the plugin it is
    refused before anything runs, in one line naming the Hydra key instead; ``--fp16`` is not."""
    from linformer_fairseq.compat import bf16_command_line
    from linformer_fairseq.errors import OptionError

    flags = [mlm_data, "--user-dir", os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                                                    "linformer_fairseq"),
             "--task", "masked_lm", "--arch", "linformer_roberta_tiny", "--compressed-dim", "8"]
    with pytest.raises(OptionError, match="common.bf16=true"):
        parse(mlm_data, "--compressed-dim", "8", "--bf16")
    args = parse(mlm_data, "--compressed-dim", "8", "--fp16")
    assert args.fp16 and not args.tpu
    done = subprocess.run([os.path.join(os.path.dirname(sys.executable), "fairseq-train"), *flags, "--bf16", "--cpu",
                           "--max-update", "1", "--save-dir", str(tmp_path / "save")],
                          capture_output=True, text=True, timeout=300, cwd=tmp_path,
                          env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"error: {bf16_command_line.MESSAGE}"
    assert "Traceback" not in done.stderr and not (tmp_path / "save").exists()
