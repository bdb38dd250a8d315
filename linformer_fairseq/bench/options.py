"""What the benchmarks' command lines share: lists of sizes and of fractions, and a progress bar over a grid."""

import argparse
import sys
from typing import Iterable, List, Optional


def positive_ints(text: str) -> List[int]:
    """An argparse type: comma-separated positive integers ("512,1024")."""
    try:
        values = [int(v) for v in text.split(",") if v]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}")
    if not values or any(v <= 0 for v in values):
        raise argparse.ArgumentTypeError(f"expected positive integers, got {text!r}")
    return values


def fractions(text: str) -> List[float]:
    """An argparse type: comma-separated fractions in (0, 1] ("1,0.9,0.5")."""
    try:
        values = [float(v) for v in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated fractions, got {text!r}")
    if any(not 0 < v <= 1 for v in values):
        raise argparse.ArgumentTypeError(f"expected fractions in (0, 1], got {text!r}")
    return values


def fractions_or_mix(text: str) -> List[Optional[float]]:
    """An argparse type: 'mix' (None: the default mix of document lengths) and fractions in (0, 1]."""
    values = []
    for item in text.split(","):
        try:
            value = None if item == "mix" else float(item)
        except ValueError:
            value = -1.0
        if value is not None and not 0 < value <= 1:
            raise argparse.ArgumentTypeError(f"expected 'mix' or fractions in (0, 1], got {item!r}")
        values.append(value)
    return values


def with_progress(items: Iterable, description: str, enabled: bool = True) -> Iterable:
    """``items``, with a progress bar on stderr when ``enabled``."""
    if not enabled:
        return items
    from tqdm import tqdm

    return tqdm(list(items), desc=description, file=sys.stderr)
