"""The replication's figures: Figure 3's sweeps, pretraining runs side by side, Figure 1's spectra."""

import os

from ..atomic_files import PathLike
from ..figures import pyplot, save


def _plot_points(ax, points, **style) -> None:
    ax.plot([update for update, _ in points], [value for _, value in points], **style)


def plot_sweep(rows, curves, sweep: str, settings: dict, path: PathLike) -> None:
    """Validation perplexity against updates: at one n, a curve per k and RoBERTa (``k_sweep``,
    Figure 3 a, b), or at one k, a curve per n with RoBERTa dashed in the same colour (``n_sweep``, c, d)."""
    plt = pyplot()
    members = [row for row in rows if sweep in row["sweeps"]]
    figure, ax = plt.subplots(figsize=(6.4, 4.4))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    if sweep == "k_sweep":
        ordered = sorted(members, key=lambda r: (r["attention"] == "roberta", r["k"] if r["k"] != "-" else 0))
        for i, row in enumerate(ordered):
            roberta = row["attention"] == "roberta"
            if curves[row["run"]]:
                _plot_points(ax, curves[row["run"]], color="black" if roberta else colours[i],
                             linestyle="--" if roberta else "-",
                             label="RoBERTa (standard attention)" if roberta else f"Linformer k = {row['k']}")
        ax.set_title(f"Validation perplexity, n = {settings['k_sweep']['n']} (Figure 3 a, b)")
    else:
        ns = sorted({row["n"] for row in members})
        for row in members:
            roberta = row["attention"] == "roberta"
            if curves[row["run"]]:
                _plot_points(ax, curves[row["run"]], color=colours[ns.index(row["n"]) % len(colours)],
                             linestyle="--" if roberta else "-",
                             label=f"RoBERTa n = {row['n']}" if roberta else f"Linformer n = {row['n']}, k = {row['k']}")
        ax.set_title(f"Validation perplexity, k = {settings['n_sweep']['k']} (Figure 3 c, d)")
    ax.set_xlabel("updates")
    ax.set_ylabel("validation perplexity (log scale)")
    ax.set_yscale("log")
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize="small")
    save(figure, path)


def plot_pretraining_curves(curves_by_run: dict, path: PathLike) -> None:
    """Training loss, validation loss and validation perplexity against updates, a line per run."""
    plt = pyplot()
    panels = ["train loss", "valid loss", "valid perplexity"]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8))
    for ax, panel in zip(axes, panels):
        for label, curves in curves_by_run.items():
            points = curves[panel]
            if points:
                _plot_points(ax, points, marker="." if len(points) < 30 else None, label=label)
        ax.set_title(panel)
        ax.set_xlabel("updates")
        ax.grid(alpha=0.3)
    axes[0].legend()
    save(figure, path, dpi=110)


def plot_spectrum(result: dict, path: PathLike) -> None:
    """Figure 1: (left) the normalized cumulative singular values of the attention matrices, a curve
    per layer and their average, a dotted line at the fraction the ranks are read at; (right) each
    head's curve at index 128 (``at_index``), a heat map of layer x head."""
    import numpy as np

    plt = pyplot()
    curves = result["curves"]
    figure, (ax, heat) = plt.subplots(1, 2, figsize=(12.8, 4.6), gridspec_kw={"width_ratios": [1.15, 1]})
    layers = [key for key in curves if key != "average"]
    colours = plt.get_cmap("viridis")
    for position, layer in enumerate(layers):
        curve = curves[layer]
        ax.plot(range(1, len(curve) + 1), curve, color=colours(position / max(1, len(layers) - 1)), linewidth=1,
                label=f"layer {layer}")
    average = curves["average"]
    ax.plot(range(1, len(average) + 1), average, color="black", linewidth=2.2, linestyle="--", label="average")
    ax.axhline(result["fraction"], color="grey", linewidth=0.6, linestyle=":")
    ax.set_xlabel("singular value index")
    ax.set_ylabel("normalized cumulative singular value")
    ax.set_ylim(0, 1.02)
    ax.set_xlim(1, len(average))
    name = os.path.basename(str(result["model"]).rstrip("/")) if "model" in result else result["arch"]
    ax.set_title(f"{name}: {result['attention']}, T = {result['length']}, {result['sentences']} sentences", fontsize="medium")
    ax.grid(alpha=0.3)
    ax.legend(fontsize="x-small", ncol=2 if len(layers) > 6 else 1, loc="lower right")

    rows = [entry["head_at_128"] for entry in result["layers"]]
    values = np.full((len(rows), max(len(row) for row in rows)), np.nan)
    for i, row in enumerate(rows):
        values[i, :len(row)] = row
    image = heat.imshow(values, cmap="viridis", aspect="auto", origin="lower")
    figure.colorbar(image, ax=heat, label="normalized cumulative singular value")
    heat.set_xticks(range(values.shape[1]))
    heat.set_yticks(range(len(rows)), [str(entry["layer"]) for entry in result["layers"]])
    heat.set_xlabel("head")
    heat.set_ylabel("layer")
    if values.size <= 200:
        middle = np.nanmin(values) + (np.nanmax(values) - np.nanmin(values)) / 2
        for (i, j), value in np.ndenumerate(values):
            if not np.isnan(value):
                heat.text(j, i, f"{value:.2f}", ha="center", va="center", fontsize="x-small",
                          color="black" if value > middle else "white")
    indices = sorted({entry["at_index"] for entry in result["layers"]})
    heat.set_title(f"at index {', '.join(map(str, indices))} (of {len(average)})", fontsize="medium")
    save(figure, path)
