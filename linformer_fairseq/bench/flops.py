"""FLOPs of one attention layer, counted: every Linformer option, the projection-free variant and
fairseq's standard ``MultiheadAttention``, at n = 512, 4096, 65536 and k = 128, 256 (d = 768, 12
heads, batch 1, inference).

``torch.utils.flop_counter.FlopCounterMode`` counts matrix products and convolutions (softmax,
pooling and elementwise work are not FLOPs to it). Layers run on PyTorch's ``meta`` device, where
tensors have shapes but no storage (standard attention's n x n scores at n = 65536 would need
12 * 65536^2 * 4 B = 206 GB); the pooling projections, which read the data to build their masks,
run on the CPU. FlopCounterMode counts the same products either way (``tests/test_linear_cost.py``
checks that). Attention runs with the math kernel of ``scaled_dot_product_attention``:
FlopCounterMode has no formula for the fused CPU kernel and would count that attention as 0 FLOPs.
"""

from typing import Callable, Dict, List, Sequence

import torch
from fairseq.modules import MultiheadAttention
from torch import nn
from torch.nn.attention import SDPBackend, sdpa_kernel
from torch.utils.flop_counter import FlopCounterMode

from ..modules import MultiheadLinearAttention, ProjectionFreeAttention
from ..modules.projections import LinearProjection
from .options import with_progress
from .plots import plot_against_n

# Every Linformer option of one layer, as keyword arguments of MultiheadLinearAttention.
# "layerwise" hands in one projection, as the encoder does when all layers share it.
LINFORMER_OPTIONS: Dict[str, Callable[[int, int], dict]] = {
    "linear (headwise)": lambda n, k: {},
    "linear per head": lambda n, k: dict(per_head=True),
    "shared kv": lambda n, k: dict(shared_kv=True),
    "layerwise": lambda n, k: dict(shared_projection=LinearProjection(n, k)),
    "mean_pool": lambda n, k: dict(projection="mean_pool"),
    "max_pool": lambda n, k: dict(projection="max_pool"),
    "conv": lambda n, k: dict(projection="conv"),
}
FLOP_NS, FLOP_KS, FLOP_EMBED_DIM, FLOP_HEADS = (512, 4096, 65536), (128, 256), 768, 12
# Pooling looks at the data (which windows hold real tokens) to build its mask, so it runs on the
# CPU; every other layer is counted on the meta device, from shapes alone, which is instant at any n.
NEEDS_DATA = ("mean_pool", "max_pool")


def flop_device(name: str) -> str:
    return "cpu" if name in NEEDS_DATA else "meta"


def build_flop_subject(name: str, n: int, k: int, embed_dim: int = FLOP_EMBED_DIM, heads: int = FLOP_HEADS) -> nn.Module:
    """A Linformer option from ``LINFORMER_OPTIONS``, ``projection_free`` or ``standard``."""
    if name == "standard":
        return MultiheadAttention(embed_dim, heads, self_attention=True)
    if name == "projection_free":
        return ProjectionFreeAttention(embed_dim, heads)
    return MultiheadLinearAttention(embed_dim, heads, max_positions=n, compressed_dim=k, **LINFORMER_OPTIONS[name](n, k))


def count_flops(layer: nn.Module, n: int, device: str = "cpu", batch: int = 1) -> int:
    """FLOPs of one inference forward of ``layer`` on a random (n, batch, d) input."""
    embed_dim = layer.embed_dim
    layer = layer.to(device).eval()
    x = torch.randn(n, batch, embed_dim, device=device)
    counter = FlopCounterMode(display=False)
    with torch.no_grad(), sdpa_kernel([SDPBackend.MATH]), counter:
        layer(x, x, x, need_weights=False)
    return counter.get_total_flops()


def subject_flops(name: str, n: int, k: int) -> int:
    """FLOPs of a Linformer option, ``projection_free`` or ``standard`` attention at (n, k)."""
    return count_flops(build_flop_subject(name, n, k), n, device=flop_device(name))


def flop_table_rows(ns: Sequence[int], ks: Sequence[int], progress: bool = False) -> List[str]:
    """Markdown rows, one per (n, k): standard attention's GFLOPs and each option's saving."""
    subjects = list(LINFORMER_OPTIONS) + ["projection_free"]
    points = [(n, k) for n in ns for k in ks if k < n]
    rows = []
    for n, k in with_progress(points, "FLOPs", progress):
        standard = subject_flops("standard", n, k)
        cells = [f"{n}", f"{k}", f"{standard / 1e9:,.1f}"]
        for name in subjects:
            flops = subject_flops(name, n, k)
            cells.append(f"{standard / flops:.2f}x")
        rows.append("| " + " | ".join(cells) + " |")
    return rows


def flop_table(ns: Sequence[int] = FLOP_NS, ks: Sequence[int] = FLOP_KS, progress: bool = False) -> str:
    subjects = list(LINFORMER_OPTIONS) + ["projection free (no k)"]
    header = "| n | k | standard attention GFLOPs | " + " | ".join(subjects) + " |"
    rule = "|" + "---|" * (3 + len(subjects))
    rows = flop_table_rows(ns, ks, progress)
    note = (f"FLOPs of one attention layer (d = {FLOP_EMBED_DIM}, {FLOP_HEADS} heads, batch 1, inference), "
            "counted by `torch.utils.flop_counter.FlopCounterMode` (torch " + torch.__version__ + "). "
            "Cells: standard attention's FLOPs divided by the option's (how many times fewer).")
    return "\n".join([note, "", header, rule] + rows)


def plot_flops_vs_n(path: str, ns: Sequence[int] = tuple(2**i for i in range(9, 17)), ks: Sequence[int] = FLOP_KS) -> None:
    """FLOPs of one layer against n, log-log: standard attention's quadratic bend against the
    straight lines of Linformer (per k) and of the projection-free variant. Meta device: instant."""
    subjects = {"standard attention (fairseq MultiheadAttention)": ("standard", None)}
    subjects.update({f"Linformer, k = {k}": ("linear (headwise)", k) for k in ks})
    subjects["projection-free (no k)"] = ("projection_free", None)
    curves = {label: [(n, subject_flops(name, n, k or FLOP_KS[0])) for n in ns if k is None or k < n]
              for label, (name, k) in subjects.items()}
    plot_against_n({"Attention cost against sequence length": curves}, path, base=10,
                   ylabel=f"FLOPs, one layer forward (d = {FLOP_EMBED_DIM}, {FLOP_HEADS} heads)")
