"""One-off extraction of the issue-19 pretraining pilots (2026-12-03 and 2026-12-07) from their raw logs.

Reads RUNS/*/launcher.log (command, exit status) and RUNS/*/train.log (fairseq's config dump, json records);
writes pilots.csv, pilots_settings.csv, pilots.png here; prints the [MASK]/unigram ratio at updates 200..1000.
Pilots already in pilots.csv and absent from RUNS are kept (the raw logs of earlier batches are not kept);
a pilot found in RUNS replaces its rows.
Usage: python docs/pilots/extract_pilots.py [RUNS]   (RUNS defaults to /work/pilot_out/runs)
"""
import ast
import csv
import itertools
import json
import re
import shlex
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

RUNS = Path(sys.argv[1] if len(sys.argv) > 1 else "/work/pilot_out/runs")
OUT = Path(__file__).resolve().parent
RECORD = re.compile(r"\| (valid_mask_only|valid|train_inner|train) \| (\{.*\})")
SHAPE = {"roberta_tiny": "2 x 64", "linformer_roberta_tiny": "2 x 64", "roberta_small": "4 x 256"}  # layers x width, as the model prints show


def fairseq_config(line):
    """fairseq_cli.train's config dump: a Python dict literal whose enum values are printed unquoted."""
    text = line.split("fairseq_cli.train | ", 1)[1]
    return ast.literal_eval(re.sub(r"(: )(?!True\b|False\b|None\b)([A-Za-z_][\w.]*)(?=[,}])", r"\1'\2'", text))


def launch_overrides(launcher):
    """The Hydra overrides (last one wins), from the command, or from Hydra's error line for a run that never started."""
    m = re.search(r"--config-name (?:roberta|linformer) (.*)$", launcher, re.M) or re.search(r"with overrides (.*?): Ambiguous", launcher)
    return dict(tok.lstrip("+").split("=", 1) for tok in shlex.split(m.group(1)) if "=" in tok)


def read_pilot(run):
    launcher = (run / "launcher.log").read_text()
    exit_code = re.findall(r"^exit (\d+)$", launcher, re.M)[-1]
    hydra_error = re.search(r"(Ambiguous value for argument '[^']*')", launcher)
    log = run / "train.log"
    cfg, valid, mask, wall, reached = None, {}, {}, {}, 0
    for line in log.read_text().splitlines() if log.exists() else []:
        if cfg is None and "| fairseq_cli.train | {" in line:
            cfg = fairseq_config(line)
        m = RECORD.search(line)
        if not m:
            continue
        kind, rec = m.group(1), json.loads(m.group(2))
        prefix = "" if kind == "train_inner" else kind + "_"
        update = int(rec[prefix + "num_updates"])
        if kind == "valid_mask_only":
            mask[update] = (float(rec["valid_mask_only_ppl"]), float(rec["valid_mask_only_unigram_floor_ppl"]))
        elif kind == "valid":
            valid[update] = (float(rec["valid_ppl"]), float(rec["valid_copy_floor_ppl"]))
        else:  # fairseq's "wall" meter: seconds since training started, validations included
            wall.setdefault(update, rec[prefix + "wall"])
        reached = max(reached, update)
    ov = launch_overrides(launcher)
    def get(key, default):  # fairseq's resolved config where the run started, else the overrides
        if cfg is None:
            return ov.get(key, default)
        value = cfg[key.split(".")[0]].get(key.split(".")[1])
        return default if value is None else value

    rows = [dict(pilot=run.name, update=u, mask_ppl=mp, unigram_floor_ppl=uf, mask_ratio_to_unigram=round(mp / uf, 4),
                 valid_ppl=valid[u][0], copy_floor_ppl=valid[u][1], valid_ratio_to_copy=round(valid[u][0] / valid[u][1], 4),
                 train_wall_s=wall.get(u, "")) for u, (mp, uf) in sorted(mask.items())]
    arch = get("model._name", ov.get("arch"))
    all_mask = float(get("task.leave_unmasked_prob", 0.1)) == 0 and float(get("task.random_token_prob", 0.1)) == 0
    learned = str(get("model.encoder_learned_pos", True)).lower() != "false"
    scaled = str(get("model.no_scale_embedding", True)).lower() == "false"  # roberta's default: not scaled
    corpus = re.search(r"corpus(\d+k)", str(get("task.data", "")))
    dictionary = Path(str(get("task.data", ""))) / "dict.txt"
    vocab = (corpus.group(1) if corpus  # else the size of its dictionary, for a corpus directory named otherwise
             else f"{round(len(dictionary.read_text().splitlines()) / 1000)}k" if dictionary.exists() else "not logged")
    ended = {"0": "finished", "143": "stopped (SIGTERM, exit 143; README.md says why where known)"}.get(exit_code, f"failed (exit {exit_code})")
    if hydra_error:
        ended += ": Hydra " + hydra_error.group(1) + " (unquoted comma read as a sweep)"
    settings = dict(
        pilot=run.name, size=arch.replace("linformer_", "").replace("roberta_", ""), layers_x_width=SHAPE[arch],
        vocab=vocab, projection=get("model.projection", "") or "",
        k=get("model.compressed_dim", "") if arch.startswith("linformer") else "", n=get("task.tokens_per_sample", ov["length"][1:]),
        tokens_per_update=get("task.tokens_per_update", ""), lr=str(get("optimization.lr", "")).strip("[]"),
        mask_prob=get("task.mask_prob", 0.15), pre_ln=str(get("model.encoder_normalize_before", False)).lower() == "true",
        positions=("learned" + (", sinusoidal init" if get("task.position_init", "normal") == "sinusoidal" else "")
                   if learned else "sinusoidal" + (" (embeddings scaled by sqrt(d))" if scaled else " (fixed, unscaled)")),
        masking="all-[MASK]" if all_mask else "80/10/10", block_length_schedule=get("task.block_length_schedule", ""),
        block_positions=get("task.block_positions", "restart") if get("task.block_length_schedule", "") else "",
        heads=get("model.encoder_attention_heads", ""),
        lr_decay_to_update=get("lr_scheduler.total_num_update", "") or get("optimization.max_update", ""),
        updates_reached=reached, final_update=rows[-1]["update"] if rows else "",
        final_mask_ratio_to_unigram=rows[-1]["mask_ratio_to_unigram"] if rows else "", ended=ended)
    return rows, settings


def write_csv(path, rows):
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def read_csv(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def number(value):
    try:
        return float(value) if "." in value else int(value)
    except ValueError:
        return value


new = [read_pilot(run) for run in sorted(p for p in RUNS.iterdir() if (p / "launcher.log").exists())]
names = {settings["pilot"] for _, settings in new}
fields = list(new[0][1]) if new else None
kept = [] if not (OUT / "pilots_settings.csv").exists() else [
    ([{k: number(v) for k, v in row.items()} for row in read_csv(OUT / "pilots.csv") if row["pilot"] == s["pilot"]],
     {**{k: "" for k in fields or s}, **s}) for s in read_csv(OUT / "pilots_settings.csv") if s["pilot"] not in names]
pilots = sorted(kept + new, key=lambda pilot: pilot[1]["pilot"])
write_csv(OUT / "pilots.csv", [row for rows, _ in pilots for row in rows])
write_csv(OUT / "pilots_settings.csv", [{k: settings.get(k, "") for k in (fields or settings)} for _, settings in pilots])

fig, ax = plt.subplots(figsize=(13, 9))
colours = itertools.cycle(plt.get_cmap("tab20").colors)
for rows, s in pilots:
    if rows:
        colour = next(colours)
        label = (f"{s['pilot'].split('_')[0]}: {s['size']} n={s['n']}" + (f" Linformer k={s['k']} {s['projection']}" if s.get("k") else "")
                 + f" vocab {s['vocab']}, {s['tokens_per_update']} tok, lr {s['lr']}, "
                 f"mask {s['mask_prob']}" + (", all-[MASK]" if s["masking"] == "all-[MASK]" else "")
                 + (", sinusoidal" if s["positions"].startswith("sinusoidal") else "")
                 + (", sinusoidal init" if s["positions"].endswith("sinusoidal init") else "")
                 + (f", blocks {s['block_length_schedule']}" if s["block_length_schedule"] else "")
                 + (", kept positions" if s.get("block_positions") == "keep" else "")
                 + (f", {s['heads']} heads" if str(s.get("heads")) not in ("", "4") else "")
                 + (f", {s['updates_reached']} updates" if int(s.get("updates_reached") or 0) > 2000 else ""))
        ax.plot([r["update"] for r in rows], [r["mask_ratio_to_unigram"] for r in rows], markersize=3, label=label,
                color=colour, linestyle="--" if s.get("k") else "-",  # dashed: Linformer
                marker="s" if s.get("block_positions") == "keep" else "o")  # squares: kept positions
ax.axhline(1.0, color="black", linewidth=1, linestyle="--", label="unigram floor (1.0)")
ax.axhline(0.5, color="red", linewidth=1, linestyle=":", label="issue 19 target (0.5)")
ax.set(xlabel="updates", ylabel="[MASK] ppl / unigram floor ppl", ylim=(0.2, 1.2),
       xlim=(0, 50 + max((r["update"] for rows, _ in pilots for r in rows), default=2000)),
       title="Issue 19 pretraining pilots (2026-12-03, 2026-12-07): [MASK] perplexity / unigram floor, validated at whole blocks")
ax.grid(alpha=0.3)
ax.legend(loc="upper center", bbox_to_anchor=(0.5, -0.08), ncol=2, fontsize=7.5)
fig.tight_layout()
fig.savefig(OUT / "pilots.png", dpi=120)

for rows, settings in pilots:
    ratios = {r["update"]: r["mask_ratio_to_unigram"] for r in rows}
    print(settings["pilot"], "|", " | ".join(f"{ratios[u]:.3f}" if u in ratios else "" for u in (200, 400, 600, 800, 1000)))
