"""What the benchmarks' command lines share: lists of sizes, and a progress bar over a grid."""

import argparse
import sys
from typing import Iterable, List


def positive_ints(text: str) -> List[int]:
    """An argparse type: comma-separated positive integers ("512,1024")."""
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def with_progress(items: Iterable, description: str, enabled: bool = True) -> Iterable:
    """``items``, with a progress bar on stderr when ``enabled``."""
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(list(items), desc=description, file=sys.stderr)
