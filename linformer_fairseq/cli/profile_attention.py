"""Where one attention layer's time goes, and what ``torch.compile`` gains, on the CPU.

``profile``
    Times each method's step (``linformer-benchmark-attention``'s layers and steps: ``sdpa`` and
    ours at each k, forward + backward by default) *interleaved*, one step of each per round, so a
    shared machine's changing load hits every method alike; then profiles a few steps of each with
    ``torch.profiler`` and prints, per method, the median time, its FLOPs per step
    (``FlopCounterMode``, see ``speed_targets``), the rate they ran at and the ops that took the time.
    With ``--real 1,0.9,0.5`` every method is also timed on padded batches (that fraction of each
    row real, then padding), in the same rounds; the profiles are of the unpadded batches.

``compile``
    Our layer eager against ``torch.compile`` (inductor), unpadded and padded (``--real`` of each
    row real, right-padded), interleaved as above; compilation happens in warm-up, outside the timing.

    linformer-profile-attention profile --n 512 --ks 128,256 --tokens 16384
    linformer-profile-attention compile --n 512 --k 128 --tokens 4096

Both print Markdown with the load average before and after: on a shared machine, read the ratios
(interleaved), not the absolute times. ``--threads`` (default 1) sets PyTorch's threads; on a busy
2-core machine one thread is the steady choice.
"""
import argparse
import sys
from typing import List

from ..bench.options import fractions
from ..launch.console import tool_parser


def _ints(text: str) -> List[int]:
    try:
        return [int(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")


def parse_args(argv=None) -> argparse.Namespace:
    parser = tool_parser("linformer-profile-attention", __doc__)
    parser.add_argument("what", choices=["profile", "compile"])
    parser.add_argument("--n", type=int, default=512)
    parser.add_argument("--ks", type=_ints, default=[128, 256], help="profile: our k's (default 128,256)")
    parser.add_argument("--k", type=int, default=128, help="compile: our k (default 128)")
    parser.add_argument("--tokens", type=int, default=16384, help="tokens per batch; batch = tokens / n")
    parser.add_argument("--embed-dim", type=int, default=768)
    parser.add_argument("--heads", type=int, default=12)
    parser.add_argument("--mode", choices=["training", "inference"], default="training")
    parser.add_argument("--rounds", type=int, default=5, help="timed rounds (one step of each per round)")
    parser.add_argument("--profile-steps", type=int, default=2)
    parser.add_argument("--top", type=int, default=10, help="profile: ops listed per method (0: no profile)")
    parser.add_argument("--real", type=fractions, help="fractions of real tokens per row, the rest padding "
                        "(default: 1 for profile, 1,0.5 for compile)")
    parser.add_argument("--backend", default="inductor", help="compile: torch.compile's backend (default %(default)s)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    if args.tokens % args.n:
        parser.error(f"--tokens {args.tokens} is not a multiple of --n {args.n}")
    if args.real is None:
        args.real = [1.0] if args.what == "profile" else [1.0, 0.5]
    return args


def main(argv=None) -> int:
    args = parse_args(argv)
    import torch

    from ..bench.profile_attention import run_compile, run_profile

    torch.set_num_threads(args.threads)
    print(run_profile(args) if args.what == "profile" else run_compile(args))
    return 0


if __name__ == "__main__":
    sys.exit(main())
