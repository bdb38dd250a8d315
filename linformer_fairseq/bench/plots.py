"""Every benchmark's figure: a quantity against the sequence length n, one curve per method or model."""

from typing import Dict, List, Sequence, Tuple

from ..atomic_files import PathLike
from ..figures import pyplot, save

Curves = Dict[str, List[Tuple[float, float]]]  # label -> (n, value) points


def plot_against_n(panels: Dict[str, Curves], path: PathLike, ylabel: str, suptitle: str = "", base: int = 2,
                   log_y: bool = True, notes: Dict[str, Sequence[Tuple[float, str]]] = None) -> None:
    """One panel per title in ``panels`` (side by side), each with a curve per label, log-log in n
    (``base`` 2 or 10). ``notes``: per panel, (n, text) written at the top of the panel at that n
    (points that did not finish: out of memory, too slow)."""
    plt = pyplot()
    figure, axes = plt.subplots(1, len(panels), figsize=(6 * len(panels), 4.5) if len(panels) > 1 else (6.4, 4.4),
                                squeeze=False)
    for ax, (title, curves) in zip(axes[0], panels.items()):
        for label, points in curves.items():
            if points:
                ax.plot(*zip(*sorted(points)), marker="o", label=label)
        for i, (n, text) in enumerate(sorted((notes or {}).get(title, ()))):
            ax.annotate(text, xy=(n, 0.97 - 0.06 * (i % 3)), xycoords=("data", "axes fraction"), ha="center",
                        va="top", fontsize=8, color="C3")
        ax.set_xscale("log", base=base)
        if log_y:
            ax.set_yscale("log")
        ax.set_xlabel("sequence length n")
        ax.set_ylabel(ylabel)
        ax.set_title(title)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    if suptitle:
        figure.suptitle(suptitle)
    save(figure, path)
