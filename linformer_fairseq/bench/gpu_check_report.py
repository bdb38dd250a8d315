"""The GPU check's verdicts and its one-screen summary (``linformer-gpu-check``, see ``gpu_check.py``)."""

import dataclasses
import datetime
import shlex
from typing import Dict, List, Optional, Sequence

from .gpu_check_plan import Plan, gpu_plan


@dataclasses.dataclass
class Verdict:
    target: str
    measured: str
    verdict: str  # PASS, FAIL or NOT RUN


def _attention_row(rows, method, mode, n, k=None, real=1.0):
    for r in rows:
        if (r["method"], r["mode"], int(r["n"])) == (method, mode, n) and (k is None or str(r["k"]) == str(k)) \
                and float(r.get("real_fraction") or 1.0) == real:
            return r if r["status"] == "ok" else None
    return None


def _check(target: str, value: Optional[float], threshold: float, at_least: bool) -> Verdict:
    if value is None:
        return Verdict(target, "-", "NOT RUN")
    ok = value >= threshold if at_least else value <= threshold
    return Verdict(target, f"{value:.2f}x", "PASS" if ok else "FAIL")


def _targets(level: str, baseline: str) -> list:
    from .speed_targets import TARGETS

    return [t for t in TARGETS if (t.level, t.baseline) == (level, baseline)]


def check_targets(plan: Plan, attention: List[dict], pretraining: List[dict]) -> List[Verdict]:
    """The targets of ``speed_targets.TARGETS`` (derived there from FLOP counts), read at the plan's
    grid positions: the GPU plan's n = 512, 4096, 65536 and k = 128, 256, or the dry run's stand-ins
    at the same positions. The layer targets are on unpadded batches."""
    gpu = gpu_plan()
    ns, ks = plan.attention_ns, plan.attention_ks
    n_at, k_at = dict(zip(gpu.attention_ns, ns)), dict(zip(gpu.attention_ks, ks))
    verdicts = []
    for n, k, threshold in ((n_at[t.n], k_at[t.k], t.threshold) for t in _targets("layer", "sdpa")):
        ours, sdpa = _attention_row(attention, "linformer", "training", n, k), _attention_row(attention, "sdpa", "training", n)
        value = float(sdpa["time_ms"]) / float(ours["time_ms"]) if ours and sdpa else None
        verdicts.append(_check(f"layer fwd+bwd time, SDPA / ours >= {threshold:g}x at n = {n}, k = {k}", value,
                               threshold, at_least=True))
    for n in ns:  # peak memory at most SDPA's: the worst ratio over k and mode
        ratios = []
        for mode in plan.modes:
            sdpa = _attention_row(attention, "sdpa", mode, n)
            for k in ks:
                ours = _attention_row(attention, "linformer", mode, n, k)
                if ours and sdpa and k < n:
                    ratios.append(float(ours["peak_mem_mib"]) / float(sdpa["peak_mem_mib"]))
        expected = len(plan.modes) * len([k for k in ks if k < n])
        verdicts.append(_check(f"layer peak memory, ours / SDPA <= 1x at n = {n} (worst of k = "
                               f"{', '.join(map(str, ks))}, inference and training)",
                               max(ratios) if len(ratios) == expected else None, 1.0, at_least=False))
    threshold = _targets("layer", "reference")[0].threshold  # at every n, the worst k
    for n in ns:
        ratios = []
        for k in ks:
            ours, ref = (_attention_row(attention, m, "training", n, k) for m in ("linformer", "reference"))
            if ours and ref:
                ratios.append(float(ref["time_ms"]) / float(ours["time_ms"]))
        verdicts.append(_check(f"layer fwd+bwd time, reference / ours >= {threshold:g}x at n = {n} (worst of k = "
                               f"{', '.join(map(str, ks))})", min(ratios) if len(ratios) == len(ks) else None,
                               threshold, at_least=True))
    finished = {(int(r["n"]), r["k"] or None): r for r in pretraining if r["status"] == "ok"}
    n_at = dict(zip(gpu.pretraining_ns, plan.pretraining_ns))
    k_at = dict(zip(gpu.pretraining_ks, plan.pretraining_ks))
    for t in _targets("model", "roberta"):
        n, k = n_at[t.n], k_at[t.k]
        ours, roberta = finished.get((n, k)), finished.get((n, None))
        value = float(ours["wps"]) / float(roberta["wps"]) if ours and roberta else None
        verdicts.append(_check(f"pretraining words/s ({plan.precision}), ours / roberta_{plan.size} >= "
                               f"{t.threshold:g}x at n = {n}, k = {k}", value, t.threshold, at_least=True))
    return verdicts


# --------------------------------------------------------------------------------------------
# The summary: one screen
# --------------------------------------------------------------------------------------------

def device_label(plan: Plan) -> str:
    import torch

    if plan.device == "cuda":
        return f"{torch.cuda.get_device_name(0)}, CUDA {torch.version.cuda}"
    from .measure import cpu_model

    return f"CPU ({cpu_model()})"


def layer_ratios(plan: Plan, attention: List[dict]) -> List[str]:
    """Rows n, k: the layer's fwd+bwd time of SDPA and of the reference over ours, unpadded and padded."""
    def ratio(baseline, n, k, real=1.0):
        ours = _attention_row(attention, "linformer", "training", n, k, real)
        base = _attention_row(attention, baseline, "training", n, None if baseline == "sdpa" else k, real)
        return f"{float(base['time_ms']) / float(ours['time_ms']):.2f}x" if ours and base else "-"

    lines = [f"| n | k | SDPA / ours | reference / ours | SDPA / ours, {plan.real_fraction:.0%} real |",
             "|---|---|---|---|---|"]
    for n in plan.attention_ns:
        for k in plan.attention_ks:
            lines.append(f"| {n} | {k} | {ratio('sdpa', n, k)} | {ratio('reference', n, k)} | "
                         f"{ratio('sdpa', n, k, plan.real_fraction) if n in plan.padded_ns else '-'} |")
    return lines


def summary_markdown(plan: Plan, verdicts: List[Verdict], attention: List[dict], pretraining_table: str,
                     seconds: Dict[str, float], argv: Sequence[str]) -> str:
    import torch

    passed = sum(v.verdict == "PASS" for v in verdicts)
    title = (f"# GPU check: DRY RUN on the CPU at tiny size ({passed}/{len(verdicts)} PASS; these verdicts test "
             "the pipeline, not the targets)" if plan.dry_run else f"# GPU check: {passed}/{len(verdicts)} PASS")
    lines = [title, "",
             f"{device_label(plan)}; torch {torch.__version__}; {datetime.datetime.now():%Y-%m-%d %H:%M}; "
             f"`linformer-gpu-check {shlex.join(argv)}`; time: " + ", ".join(f"{part} {s:.0f} s" for part, s in
                                                                              seconds.items()), "",
             "| target | measured | verdict |", "|---|---|---|"]
    lines += [f"| {v.target} | {v.measured} | **{v.verdict}** |" for v in verdicts]
    lines += ["", f"One layer, training (fwd+bwd), {plan.dtype}, d = {plan.embed_dim}, {plan.tokens:,} tokens per "
              "batch: time ratios (above 1x: ours is faster)", ""]
    lines += layer_ratios(plan, attention)
    lines += ["", pretraining_table.rstrip("\n"), "",
              "All tables: attention_benchmark.md (both modes, memory too), pretraining_comparison.md.", ""]
    return "\n".join(lines)
