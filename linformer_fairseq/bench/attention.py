"""One self-attention layer, timed and measured: Linformer (ours and fairseq's reference) against full attention.

The grid of the paper's efficiency table (Wang et al. 2020, Table 3): n in 512..65536, k in
128..2048 (k < n), d = 768, 12 heads, a fixed 65,536 tokens per batch (batch = 65536 / n), for
inference (forward, no autograd) and training (forward + backward). Each point: the median time of
``repeats`` steps after ``warmup`` steps (CUDA events on a GPU), then the peak memory one step adds
to what is already allocated (weights and input). A point that runs out of memory is recorded as OOM.

Methods: ``linformer`` (ours, ``MultiheadLinearAttention``, linear headwise projection),
``reference`` (fairseq's ``examples/linformer`` layer, ``compressed = n / k``), ``sdpa`` (full
attention through ``F.scaled_dot_product_attention``, fused kernels allowed), ``sdpa_math`` (the
same forced onto the math kernel, which materialises the n x n scores as the paper's 2020
Transformer did), ``fairseq_mha`` (``fairseq.modules.MultiheadAttention``) and
``projection_free`` (``ProjectionFreeAttention``, no k).
"""

import csv
import gc
import time
from typing import Callable, Iterable, List, Optional, Sequence

import torch
import torch.nn.functional as F
from fairseq.modules import MultiheadAttention
from torch import Tensor, nn
from torch.nn.attention import SDPBackend, sdpa_kernel

from ..atomic_files import atomic_open
from ..modules import MultiheadLinearAttention, ProjectionFreeAttention
from .measure import device_name, is_out_of_memory, median_time_ms, peak_step_memory_bytes
from .reference_linformer import reference_attention_class

FULL_ATTENTION = ("sdpa", "sdpa_math", "fairseq_mha", "projection_free")  # no k
LINFORMER = ("linformer", "reference")  # one run per k
METHODS = LINFORMER + FULL_ATTENTION
MODES = ("inference", "training")

PAPER_GRID = dict(ns=(512, 1024, 2048, 4096, 8192, 16384, 32768, 65536), ks=(128, 256, 512, 1024, 2048),
                  embed_dim=768, heads=12, tokens=65536, warmup=3, repeats=10)
SMALL_GRID = dict(ns=(128, 256, 512), ks=(32, 64), embed_dim=64, heads=4, tokens=2048, warmup=1, repeats=5)


class SdpaSelfAttention(nn.Module):
    """Full softmax attention with the q/k/v/out projections every other method has.

    ``math_kernel`` forces SDPA's math implementation, which materialises the n x n scores (the
    attention of the paper's 2020 baseline); otherwise PyTorch picks a fused kernel (flash or
    memory-efficient on a GPU), whose memory grows linearly in n.
    """

    def __init__(self, embed_dim: int, num_heads: int, math_kernel: bool = False):
        super().__init__()
        self.num_heads, self.head_dim = num_heads, embed_dim // num_heads
        self.math_kernel = math_kernel
        self.q_proj, self.k_proj, self.v_proj, self.out_proj = (nn.Linear(embed_dim, embed_dim) for _ in range(4))

    def forward(self, query: Tensor, key=None, value=None, key_padding_mask: Optional[Tensor] = None,
                need_weights: bool = False, **unused):
        seq_len, bsz, embed_dim = query.shape
        x = query.transpose(0, 1)
        q, k, v = (p(x).view(bsz, seq_len, self.num_heads, self.head_dim).transpose(1, 2)
                   for p in (self.q_proj, self.k_proj, self.v_proj))
        keep = None if key_padding_mask is None else ~key_padding_mask[:, None, None, :]  # (B, 1, 1, n)
        if self.math_kernel:
            with sdpa_kernel([SDPBackend.MATH]):
                out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        else:
            out = F.scaled_dot_product_attention(q, k, v, attn_mask=keep)
        return self.out_proj(out.permute(2, 0, 1, 3).reshape(seq_len, bsz, embed_dim)), None


def build_layer(method: str, n: int, k: Optional[int], embed_dim: int, heads: int) -> nn.Module:
    """One self-attention layer of ``method`` for sequences of length ``n`` (dropout 0)."""
    if method == "linformer":
        return MultiheadLinearAttention(embed_dim, heads, max_positions=n, compressed_dim=k)
    if method == "reference":
        if n % k:
            raise ValueError(f"the reference layer needs k to divide n (compressed = n / k); got n={n}, k={k}")
        return reference_attention_class()(embed_dim, heads, self_attention=True, compressed=n // k, max_seq_len=n)
    if method in ("sdpa", "sdpa_math"):
        return SdpaSelfAttention(embed_dim, heads, math_kernel=method == "sdpa_math")
    if method == "fairseq_mha":
        return MultiheadAttention(embed_dim, heads, self_attention=True)
    if method == "projection_free":
        return ProjectionFreeAttention(embed_dim, heads)
    raise ValueError(f"unknown method {method!r}; expected one of {', '.join(METHODS)}")


def padding_mask_for(n: int, batch: int, real_fraction: float, device=None) -> Optional[Tensor]:
    """A (batch, n) key padding mask, True at pads: every row holds ``round(real_fraction * n)`` real
    tokens, then padding (fairseq's right padding); None when every token is real."""
    real = max(1, round(real_fraction * n))
    if real >= n:
        return None
    return (torch.arange(n, device=device) >= real).expand(batch, n).contiguous()


def make_step(layer: nn.Module, x: Tensor, mode: str, padding_mask: Optional[Tensor] = None) -> Callable[[], None]:
    """One inference forward (no autograd) or one training forward + backward, on a padded batch
    when ``padding_mask`` (B, n) is given."""
    if mode == "inference":
        def step():
            with torch.no_grad():
                layer(x, x, x, key_padding_mask=padding_mask, need_weights=False)
    elif mode == "training":
        def step():
            layer.zero_grad(set_to_none=True)
            x.grad = None
            out, _ = layer(x, x, x, key_padding_mask=padding_mask, need_weights=False)
            out.backward(torch.ones_like(out))
    else:
        raise ValueError(f"mode must be one of {MODES}, got {mode!r}")
    return step


def benchmark_point(method: str, mode: str, n: int, k: Optional[int], *, embed_dim: int, heads: int, tokens: int,
                    device: torch.device, dtype: torch.dtype, warmup: int, repeats: int,
                    build: Callable[..., nn.Module] = build_layer, real_fraction: float = 1.0) -> dict:
    """One grid point, ``real_fraction`` of each row real tokens and the rest padding; out-of-memory
    becomes ``status = "OOM"``, anything else is raised."""
    batch = tokens // n
    mask = padding_mask_for(n, batch, real_fraction, device)
    row = dict(method=method, mode=mode, n=n, k=k if k is not None else "", batch=batch, embed_dim=embed_dim,
               heads=heads, device=device_name(device), dtype=str(dtype).replace("torch.", ""),
               real_fraction=1.0 if mask is None else round(float((~mask).float().mean()), 4),
               time_ms="", peak_mem_mib="", status="ok")
    oom = False
    try:
        layer = build(method, n, k, embed_dim, heads).to(device=device, dtype=dtype)
        layer.train(mode == "training")
        x = torch.randn(n, batch, embed_dim, device=device, dtype=dtype, requires_grad=mode == "training")
        step = make_step(layer, x, mode, mask)
        row["time_ms"] = round(median_time_ms(step, device, warmup, repeats), 4)
        row["peak_mem_mib"] = round(peak_step_memory_bytes(step, device, layer, x) / 2**20, 3)
    except RuntimeError as error:  # torch.cuda.OutOfMemoryError is a RuntimeError
        if not is_out_of_memory(error):
            raise
        oom = True
    layer = x = step = mask = None
    if oom:  # outside the except block, so its traceback no longer holds the tensors
        row.update(time_ms="", peak_mem_mib="", status="OOM")
        gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the next point starts from the same empty cache
    return row


def grid_points(ns: Iterable[int], ks: Iterable[int], methods: Sequence[str], modes: Sequence[str], tokens: int,
                real_fractions: Sequence[float] = (1.0,)):
    """(method, mode, n, k, real fraction) of the grid: one grid per fraction of real tokens, most real first."""
    for real in real_fractions:
        for n in ns:
            if tokens % n:
                raise ValueError(f"--tokens {tokens} is not a multiple of n = {n}: the batch must be tokens / n sequences")
            for mode in modes:
                for method in methods:
                    for k in ([k for k in ks if k < n] if method in LINFORMER else [None]):
                        yield method, mode, n, k, real


CSV_FIELDS = ["method", "mode", "n", "k", "batch", "embed_dim", "heads", "device", "dtype", "real_fraction", "time_ms",
              "peak_mem_mib", "status"]


def write_csv(path: str, rows: List[dict]) -> None:
    with atomic_open(path) as f:
        writer = csv.DictWriter(f, fieldnames=CSV_FIELDS)
        writer.writeheader()
        writer.writerows(rows)


def measure_grid(points: Iterable[tuple], csv_path: str, *, embed_dim: int, heads: int, tokens: int,
                 device: torch.device, dtype: torch.dtype, warmup: int, repeats: int,
                 deadline: Optional[float] = None, report: Optional[Callable[[dict], None]] = None) -> List[dict]:
    """Every (method, mode, n, k, real fraction) point of ``grid_points``, the CSV rewritten after each
    (a long run keeps what it measured); points not started by ``deadline`` (``time.monotonic()``) are
    recorded as skipped."""
    rows: List[dict] = []
    torch.manual_seed(0)
    for method, mode, n, k, real in points:
        if deadline is not None and time.monotonic() > deadline:
            rows.append(dict(method=method, mode=mode, n=n, k=k if k is not None else "", batch=tokens // n,
                             embed_dim=embed_dim, heads=heads, device=str(device), dtype=str(dtype).replace("torch.", ""),
                             real_fraction=real, time_ms="", peak_mem_mib="", status="skipped (time budget)"))
        else:
            rows.append(benchmark_point(method, mode, n, k, embed_dim=embed_dim, heads=heads, tokens=tokens,
                                        device=device, dtype=dtype, warmup=warmup, repeats=repeats,
                                        real_fraction=real))
        if report is not None:
            report(rows[-1])
        write_csv(csv_path, rows)
    return rows
