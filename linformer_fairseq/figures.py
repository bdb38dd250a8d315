"""Figures as files: matplotlib without a display (clusters have none), each saved whole and closed."""

from .atomic_files import PathLike, atomic_savefig


def pyplot():
    """``matplotlib.pyplot`` on the file-only Agg backend."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save(figure, path: PathLike, dpi: int = 120) -> None:
    """Lay ``figure`` out, write it atomically (format from the extension) and close it."""
    try:
        figure.tight_layout()
        atomic_savefig(figure, path, dpi=dpi)
    finally:
        pyplot().close(figure)
