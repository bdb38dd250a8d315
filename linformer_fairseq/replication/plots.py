"""The replication's figures: Figure 3's sweeps, pretraining runs side by side, Figure 1's spectra."""

import os

from ..atomic_files import PathLike
from ..figures import pyplot, save


def _plot_points(ax, points, **style) -> None:
    ax.plot([update for update, _ in points], [value for _, value in points], **style)


SEED_STYLES = ["-", "-.", ":", (0, (5, 1))]


def plot_sweep(rows, curves, sweep: str, settings: dict, path: PathLike) -> None:
    """[MASK] perplexity against updates (left) and training wall time (right): at one n, a curve per k
    and RoBERTa in black (``k_sweep``, Figure 3 a, b), or at one k, a curve per n with RoBERTa dashed in
    the same colour (``n_sweep``, c, d); one line style per seed (k sweep: RoBERTa black, every seed its style);
    the unigram floor of each n in grey.
    ``curves[run]``: {"mask": [(update, wall seconds, ppl)], "floor": the unigram floor}."""
    plt = pyplot()
    members = [row for row in rows if sweep in row["sweeps"] and curves[row["run"]]["mask"]]
    figure, axes = plt.subplots(1, 2, figsize=(12, 4.4), sharey=True)
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    seeds = sorted({row["seed"] for row in members})
    ks = sorted({row["k"] for row in members if row["attention"] == "linformer"})
    ns = sorted({row["n"] for row in members})
    for row in sorted(members, key=lambda r: (r["n"], r["attention"] == "roberta", r["k"] if r["k"] != "-" else 0, r["seed"])):
        roberta = row["attention"] == "roberta"
        seed = f", seed {row['seed']}" if len(seeds) > 1 else ""
        if sweep == "k_sweep":
            colour = "black" if roberta else colours[ks.index(row["k"]) % len(colours)]
            style = SEED_STYLES[seeds.index(row["seed"]) % len(SEED_STYLES)]  # RoBERTa: black
            label = (f"RoBERTa{seed}" if roberta else f"Linformer k = {row['k']}{seed}")
        else:
            colour = colours[ns.index(row["n"]) % len(colours)]
            style = "--" if roberta else SEED_STYLES[seeds.index(row["seed"]) % len(SEED_STYLES)]
            label = f"RoBERTa n = {row['n']}{seed}" if roberta else f"Linformer n = {row['n']}, k = {row['k']}{seed}"
        points = curves[row["run"]]["mask"]
        axes[0].plot([u for u, _, _ in points], [v for _, _, v in points], color=colour, linestyle=style, label=label)
        axes[1].plot([w / 60 for _, w, _ in points], [v for _, _, v in points], color=colour, linestyle=style)
    floors = {row["n"]: curves[row["run"]]["floor"] for row in members}
    for n, floor in sorted(floors.items()):
        for ax in axes:
            ax.axhline(floor, color="grey", linewidth=0.8, linestyle=":")
        axes[0].annotate(f"unigram floor (n = {n})", (0, floor), fontsize="x-small", color="grey",
                         xytext=(2, 2), textcoords="offset points")
    where = f"n = {settings['k_sweep']['n']} (Figure 3 a, b)" if sweep == "k_sweep" else \
        f"k = {settings['n_sweep']['k']} (Figure 3 c, d)"
    axes[0].set_title(f"[MASK] perplexity, {where}", fontsize="medium")
    axes[1].set_title("the same against training wall time", fontsize="medium")
    axes[0].set_xlabel("updates")
    axes[1].set_xlabel("training wall time (minutes)")
    axes[0].set_ylabel("[MASK] perplexity (log scale)")
    for ax in axes:
        ax.set_yscale("log")
        ax.grid(alpha=0.3, which="both")
    if members:
        axes[0].legend(fontsize="x-small")
    save(figure, path)


def plot_pretraining_curves(curves_by_run: dict, path: PathLike) -> None:
    """Training loss, the [MASK] perplexity with the unigram floor and fairseq's usual validation
    perplexity with the copy floor (floors dotted, in the run's colour) against updates, a line per run."""
    plt = pyplot()
    panels = [("train loss", None), ("[MASK] perplexity", "unigram floor"), ("valid perplexity", "copy floor")]
    figure, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 3.8))
    colours = plt.rcParams["axes.prop_cycle"].by_key()["color"]
    for ax, (panel, floor) in zip(axes, panels):
        for index, (label, curves) in enumerate(curves_by_run.items()):
            colour = colours[index % len(colours)]
            if curves[panel]:
                _plot_points(ax, curves[panel], marker="." if len(curves[panel]) < 30 else None, color=colour, label=label)
            if floor and curves.get(floor):
                _plot_points(ax, curves[floor], color=colour, linestyle=":", linewidth=1, label=f"{label}: {floor}")
        ax.set_title(panel + (" (80/10/10)" if panel == "valid perplexity" else ""))
        ax.set_xlabel("updates")
        ax.grid(alpha=0.3)
        ax.legend(fontsize="x-small")
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
