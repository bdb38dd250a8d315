"""The command-line options of Linformer attention, their defaults and their validation.

Option names and meanings of fairseq's reference (``--compressed``, ``--shared-kv-compressed``,
``--shared-layer-kv-compressed``, ``--freeze-compress``) are kept, so reference commands and
checkpoints work unchanged; the rest are the paper's options the reference never had.
"""

import argparse

from ..errors import OptionError

PROJECTIONS = ("linear", "mean_pool", "max_pool", "conv")
VARIANTS = ("linformer", "projection_free")


def add_linformer_args(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--compressed", type=int, metavar="R",
                        help="compression ratio: k = max_positions / R (fairseq reference; default 4)")
    parser.add_argument("--compressed-dim", type=int, metavar="K",
                        help="the paper's projected dimension k, independent of --max-positions")
    parser.add_argument("--compressed-dims", type=str, metavar="K1,K2,...",
                        help="one k per layer (non-uniform k, paper sec. 4), or the rule "
                        "'linspace:FIRST:LAST' (k interpolated from the first to the last layer)")
    parser.add_argument("--shared-kv-compressed", type=int, choices=[0, 1],
                        help="key-value sharing: one projection for K and V in each layer (E = F)")
    parser.add_argument("--shared-layer-kv-compressed", type=int, choices=[0, 1],
                        help="layerwise sharing: one projection for K and V in all layers")
    parser.add_argument("--compressed-per-head", type=int, choices=[0, 1],
                        help="one projection per head instead of one shared by all heads of a layer")
    parser.add_argument("--freeze-compress", type=int, choices=[0, 1],
                        help="keep the projections at their initial values (no gradient)")
    parser.add_argument("--projection", choices=PROJECTIONS,
                        help="how n positions become k: learned linear E/F, mean or max pooling, or conv: a "
                        "depthwise Conv1d along positions, one kernel per channel, no bias, no channel mixing; "
                        "kernel = stride = ceil(n/k) for the last three (default linear)")
    parser.add_argument("--attention-variant", choices=VARIANTS,
                        help="'linformer', or 'projection_free', which has no k and no max length of its own "
                        "(learned positional embeddings still end at --max-positions). "
                        "`projection_free` computes softmax-over-features(Q) · (softmax-over-positions(K)ᵀ V): "
                        "that is Shen et al. 2018, 'Efficient Attention: Attention with Linear Complexities', "
                        "used as our reading of Verma's method ('Revisiting Linformer with a modified "
                        "self-attention with linear complexity'), whose paper is not public beyond its abstract.")


def set_linformer_defaults(args: argparse.Namespace) -> None:
    """Fill unset options. ``--compressed`` defaults to 4 only when no k was given, so that a
    ratio and a k given together can be checked against each other."""
    if all(getattr(args, name, None) is None for name in ("compressed_dim", "compressed_dims", "compressed")):
        args.compressed = 4
    for name, default in (("compressed_dim", None), ("compressed_dims", None), ("compressed", None),
                          ("shared_kv_compressed", 0), ("shared_layer_kv_compressed", 0),
                          ("compressed_per_head", 0), ("freeze_compress", 0),
                          ("projection", "linear"), ("attention_variant", "linformer")):
        if getattr(args, name, None) is None:
            setattr(args, name, default)


def _parse_dims(spec: str, num_layers: int) -> list[int]:
    if spec.startswith("linspace:"):
        try:
            first, last = (int(v) for v in spec.split(":")[1:])
        except ValueError:
            raise OptionError(f"--compressed-dims {spec!r}: expected 'linspace:FIRST:LAST' with two integers")
        if num_layers == 1:
            return [first]
        return [round(first + (last - first) * i / (num_layers - 1)) for i in range(num_layers)]
    try:
        dims = [int(v) for v in spec.split(",")]
    except ValueError:
        raise OptionError(f"--compressed-dims {spec!r}: expected comma-separated integers, one per layer")
    if len(dims) != num_layers:
        raise OptionError(f"--compressed-dims {spec!r} gives {len(dims)} values but --encoder-layers is "
                         f"{num_layers}: give exactly one k per layer")
    return dims


# Options that mean something only for the projected (linformer) attention, with their defaults.
PROJECTION_ONLY = (("--projection", "projection", "linear"), ("--compressed-per-head", "compressed_per_head", 0),
                   ("--shared-kv-compressed", "shared_kv_compressed", 0),
                   ("--shared-layer-kv-compressed", "shared_layer_kv_compressed", 0),
                   ("--freeze-compress", "freeze_compress", 0))


def _check_other_options(args: argparse.Namespace) -> None:
    if args.attention_variant == "projection_free":
        given = [(flag, getattr(args, name)) for flag, name, default in PROJECTION_ONLY if getattr(args, name) != default]
        given += [(flag, getattr(args, name)) for flag, name in (("--compressed-dim", "compressed_dim"),
                                                                  ("--compressed-dims", "compressed_dims"))
                  if getattr(args, name) is not None]
        for flag, value in given:
            raise OptionError(f"{flag} {value} contradicts --attention-variant projection_free, which has no "
                             "projection: drop one of them")
        return
    if args.compressed_dims is not None and getattr(args, "encoder_layers_to_keep", None):
        raise OptionError(f"--compressed-dims {args.compressed_dims} with --encoder-layers-to-keep "
                         f"{args.encoder_layers_to_keep} is not supported: give the kept layers' k explicitly")
    if args.compressed_per_head and getattr(args, "quant_noise_pq", 0):
        raise OptionError(f"--compressed-per-head 1 with --quant-noise-pq {args.quant_noise_pq} is not supported: "
                         "per-head projections use k_proj/v_proj's weights directly, which quant-noise cannot reach")


def resolve_compressed_dims(args: argparse.Namespace) -> list[int]:
    """The k of each layer, after checking every option; raises ValueError naming the flag."""
    n, layers = args.max_positions, args.encoder_layers
    _check_other_options(args)
    if args.attention_variant == "projection_free":
        return [0] * layers
    ratio = args.compressed
    if ratio is not None and (ratio < 1 or n % ratio):
        raise OptionError(f"--compressed {ratio} must be a positive divisor of --max-positions {n} "
                         f"(k = {n} / ratio); or give k directly with --compressed-dim")
    if args.compressed_dims is not None:
        if args.shared_layer_kv_compressed:
            raise OptionError(f"--compressed-dims {args.compressed_dims} contradicts --shared-layer-kv-compressed 1: "
                             "one projection shared by all layers has a single k")
        if args.compressed_dim is not None:
            raise OptionError(f"--compressed-dims {args.compressed_dims} and --compressed-dim {args.compressed_dim} "
                             "both set k: give one of them")
        dims = _parse_dims(args.compressed_dims, layers)
        flag = "--compressed-dims"
    elif args.compressed_dim is not None:
        dims, flag = [args.compressed_dim] * layers, "--compressed-dim"
    elif ratio is not None:
        dims, flag = [n // ratio] * layers, "--compressed"
    else:
        raise OptionError("no projected dimension: give --compressed-dim K (or --compressed R)")
    if flag != "--compressed" and ratio is not None and any(k != n // ratio for k in dims):
        raise OptionError(f"--compressed {ratio} means k = {n // ratio} at --max-positions {n}, "
                         f"which contradicts {flag}: give only one of them")
    for k in dims:
        if not 1 <= k <= n:
            raise OptionError(f"{flag}: k = {k} is not allowed; k must be between 1 and --max-positions {n}")
    return dims


def check_sample_fits(tokens_per_sample, max_positions) -> None:
    """A training sample (``--tokens-per-sample``) must fit the model (``--max-positions``): fairseq
    would skip every longer one and stop with "The dataset is empty", naming neither flag."""
    if isinstance(tokens_per_sample, int) and isinstance(max_positions, int) and tokens_per_sample > max_positions:
        raise OptionError(
            f"--tokens-per-sample (task.tokens_per_sample) {tokens_per_sample} exceeds the model's --max-positions "
            f"(model.max_positions) {max_positions}: a sample of up to {tokens_per_sample} tokens (<s> and </s> "
            f"included) must fit the position embeddings and Linformer's projections; lower "
            f"--tokens-per-sample to {max_positions} or raise --max-positions to {tokens_per_sample}")
