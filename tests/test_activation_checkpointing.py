"""--checkpoint-activations and --offload-activations: each encoder layer recomputes its activations
in the backward pass. The gradients are those without checkpointing (dropout included: the RNG
state is restored for the recomputation), the peak memory of a forward + backward drops, and two
gloo data-parallel workers train a model whose projection all layers share (a parameter used by
several checkpointed layers, which fairseq's reentrant checkpoint_wrapper breaks under DDP)."""

import pytest
import torch
from fairseq.modules.checkpoint_activations import unwrap_checkpoint

from tests.model_factory import build_model, tokens_for, write_dictionary

N = 64
SIZES = ["--max-positions", N, "--tokens-per-sample", N, "--compressed-dim", 8]
LAYERWISE = ["--shared-kv-compressed", 1, "--shared-layer-kv-compressed", 1]


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
    return write_dictionary(tmp_path_factory.mktemp("dict"))


def gradients(data_dir, flags):
    torch.manual_seed(0)
    model, task = build_model(data_dir, *flags)
    model.train()  # dropout on: the recomputation must draw the same masks
    batch, _ = tokens_for(task.source_dictionary, [30, N, 12])  # padded
    torch.manual_seed(1)
    logits, _ = model(batch)
    logits.float().pow(2).mean().backward()
    return model, {name: p.grad for name, p in model.named_parameters() if p.grad is not None}


OPTIONS = {"headwise": [*SIZES], "layerwise": [*SIZES, *LAYERWISE], "per_head": [*SIZES, "--compressed-per-head", 1],
           "conv": [*SIZES, "--projection", "conv"],
           "projection_free": [*SIZES[:4], "--attention-variant", "projection_free"]}


@pytest.mark.parametrize("option", OPTIONS)
@pytest.mark.parametrize("flag", ["--checkpoint-activations", "--offload-activations"])
def test_gradients_equal_those_without_checkpointing(data_dir, option, flag):
    plain_model, plain = gradients(data_dir, OPTIONS[option])
    checkpointed_model, checkpointed = gradients(data_dir, [*OPTIONS[option], flag])
    assert all(hasattr(layer, "precheckpoint_forward") for layer in checkpointed_model.encoder.sentence_encoder.layers)
    assert not any(hasattr(layer, "precheckpoint_forward") for layer in plain_model.encoder.sentence_encoder.layers)
    assert plain.keys() == checkpointed.keys() and len(plain) > 10
    for name in plain:
        torch.testing.assert_close(checkpointed[name], plain[name], rtol=1e-6, atol=1e-7, msg=name)


def test_offloading_implies_checkpointing_and_unwraps(data_dir):
    from tests.model_factory import parse

    args = parse(data_dir, *SIZES, "--offload-activations")
    assert args.checkpoint_activations and args.offload_activations
    model, _ = build_model(data_dir, *SIZES, "--offload-activations")
    unwrap_checkpoint(model)  # fairseq's own undo (used before exporting or copying a model) works on ours
    assert not any(hasattr(layer, "precheckpoint_forward") for layer in model.encoder.sentence_encoder.layers)
    with torch.no_grad():  # no autograd: the layers run directly
        model.eval()(torch.tensor([[0, 5, 6, 2]]))


def peak_training_bytes(data_dir, *flags, n=256, batch=8):
    """Bytes of tensor storage a forward + backward adds at its peak (PyTorch's MemTracker)."""
    from linformer_fairseq.bench.measure import peak_step_memory_bytes

    torch.manual_seed(0)
    model, task = build_model(data_dir, "--max-positions", n, "--tokens-per-sample", n, "--compressed-dim", 32,
                              "--encoder-layers", 4, "--dropout", 0, "--attention-dropout", 0, *flags)
    model.train()
    tokens, _ = tokens_for(task.source_dictionary, [n] * batch)

    def step():
        model(tokens)[0].float().logsumexp(-1).mean().backward()
        model.zero_grad(set_to_none=True)

    step()  # allocate the gradients once, so both measure activations only
    return peak_step_memory_bytes(step, torch.device("cpu"), model, tokens)


def test_checkpointing_lowers_peak_activation_memory(data_dir):
    plain = peak_training_bytes(data_dir)
    checkpointed = peak_training_bytes(data_dir, "--checkpoint-activations")
    # 4 layers: only each layer's input is kept, plus one layer's activations during its backward
    assert checkpointed < 0.6 * plain, f"checkpointed {checkpointed / 2**20:.1f} MiB vs {plain / 2**20:.1f} MiB"


@pytest.mark.slow
def test_two_gloo_workers_train_layerwise_shared_model_with_checkpointing(mlm_data, tmp_path):
    """2 torchrun workers, layerwise-shared projection, checkpointed layers: they train (no "marked
    ready twice"), stay identical, and match one process without checkpointing that accumulated the
    same two batches."""
    from tests.test_cpu_data_parallel import PARAMETER_DUMPING_TRAIN, _train

    driver = tmp_path / "train_dumping_parameters.py"
    driver.write_text(PARAMETER_DUMPING_TRAIN)
    parallel, single = tmp_path / "parallel", tmp_path / "single"
    parallel.mkdir(), single.mkdir()
    sharing = ["--shared-kv-compressed", "1", "--shared-layer-kv-compressed", "1"]
    log = _train(driver, parallel, mlm_data, tmp_path / "save2", 2, *sharing, "--checkpoint-activations", workers=2)
    assert "training on 2 devices" in log
    _train(driver, single, mlm_data, tmp_path / "save1", 2, *sharing, "--update-freq", "2", workers=1)
    rank0, rank1 = (torch.load(parallel / f"rank{r}-final.pt") for r in (0, 1))
    initial = torch.load(parallel / "rank0-initial.pt")
    shared = "encoder.sentence_encoder.compress_layer.weight"
    assert (rank0[shared] - initial[shared]).abs().max() > 1e-4, "the shared projection did not train"
    for name in rank0:
        assert torch.equal(rank0[name], rank1[name]), f"ranks diverged at {name}"
    torch.testing.assert_close(rank0, torch.load(single / "rank0-final.pt"), rtol=1e-4, atol=1e-5)
