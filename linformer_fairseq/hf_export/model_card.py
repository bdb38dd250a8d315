"""The model card (``README.md``, the Hugging Face Hub's format) of an export, from the run's own records.

What it says comes from files, never from defaults: the checkpoint (its fairseq cfg: architecture,
Linformer options, optimisation; its number of updates; the validation score fairseq stored with
it), the data (the fine-tuning data's ``meta.json``; the pretraining corpus's ``prep_config.json``),
and, for a ``linformer-finetune`` run (``RUN_DIR/checkpoints/CHECKPOINT``), ``RUN_DIR/run.json``
and the ``eval_SPLIT.json`` scores of this checkpoint (same number of updates). Whatever is missing
is said to be missing. The YAML metadata (licence, language, datasets, ``model-index`` with the
measured metrics) is written by ``huggingface_hub``'s ``ModelCardData``.
"""

import json
import logging
import os
from pathlib import Path

logger = logging.getLogger(__name__)

LICENSE = "mit"  # the project's, as fairseq's
HUB_TASK = {"LinformerForSequenceClassification": ("text-classification", "Text Classification"),
            "LinformerForMaskedLM": ("fill-mask", "Fill-Mask")}
TASK_TITLES = {"sst2": "SST-2 (GLUE)", "qnli": "QNLI (GLUE)", "qqp": "QQP (GLUE)", "imdb": "IMDB reviews"}
ENGLISH_CORPORA = ("bookcorpus", "wikipedia")  # the hub corpora data prep streams are English


def read_json(path) -> dict | None:
    """A record, or None when it is absent or unreadable (the card then says it is missing)."""
    try:
        with open(path, encoding="utf-8") as f:
            record = json.load(f)
    except FileNotFoundError:
        return None
    except (OSError, ValueError) as error:
        logger.warning("model card: %s is unreadable (%s); left out", path, error)
        return None
    return record if isinstance(record, dict) else None


def cfg_value(cfg, key: str, default=None):
    """``section.name`` of a fairseq checkpoint cfg (an OmegaConf DictConfig or a plain dict)."""
    from omegaconf import OmegaConf

    if cfg is None:
        return default
    node = cfg if OmegaConf.is_config(cfg) else OmegaConf.create(cfg)
    value = OmegaConf.select(node, key, default=default)
    return OmegaConf.to_container(value) if OmegaConf.is_config(value) else value


def run_directory(checkpoint: str) -> Path | None:
    """RUN_DIR of a ``linformer-finetune`` run (it holds run.json and checkpoints/CHECKPOINT)."""
    parent = Path(os.path.abspath(checkpoint)).parent
    if parent.name == "checkpoints" and (parent.parent / "run.json").is_file():
        return parent.parent
    return None


def corpus_settings(data_dir: str, meta: dict | None) -> tuple[dict | None, str | None]:
    """The pretraining corpus's ``prep_config.json`` and its directory: the one the fine-tuning
    data was encoded with (meta.json's ``tokenizer_dir``), or the one the pretraining data lies in."""
    tokenizer_dir = ((meta or {}).get("settings") or {}).get("tokenizer_dir")
    data = os.path.abspath(data_dir)
    for directory in ([tokenizer_dir] if tokenizer_dir else []) + [data, os.path.dirname(data), os.path.dirname(os.path.dirname(data))]:
        settings = read_json(os.path.join(directory, "prep_config.json"))
        if settings is not None:
            return settings, directory
    return None, None


def hub_id(spec: str) -> str:
    """``NAME[:CONFIG][@REVISION]`` -> NAME."""
    return spec.split("@")[0].split(":")[0]


def corpus_description(settings: dict | None) -> tuple[str, list[str], bool]:
    """(what the corpus is, its hub datasets, whether it is known to be English)."""
    if settings is None:
        return "not recorded (no prep_config.json found beside the data)", [], False
    source = str(settings.get("source"))
    corpora = source.split("+")
    if all(name in ENGLISH_CORPORA for name in corpora):
        datasets = [hub_id(settings.get(f"hub_{name}", name)) for name in corpora]
        return f"{' + '.join(corpora)} from the Hugging Face Hub ({', '.join(datasets)})", datasets, True
    return f"local text, `{os.path.basename(source.rstrip('/'))}` (`linformer-prepare-corpus --source {source}`)", [], False


def attention_lines(config) -> list[str]:
    if config.attention_variant == "projection_free":
        return ["- attention: projection-free (softmax over features of Q times softmax over positions of K, "
                "times V; no k)"]
    dims = config.compressed_dims
    k = str(dims[0]) if len(set(dims)) == 1 else ", ".join(map(str, dims)) + " (per layer)"
    sharing = ("layerwise (one E for keys and values of every layer)" if config.shared_layer_kv_compressed
               else "key-value (F = E)" if config.shared_kv_compressed else "headwise (E and F shared by the heads)")
    return [f"- attention: Linformer, n = {config.max_position_embeddings} positions projected to k = {k}",
            f"- projection: `{config.projection}`; sharing: {sharing}"
            f"{'; one projection per head' if config.compressed_per_head else ''}"
            f"{'; E/F frozen' if config.freeze_compress else ''}"]


def usage(architecture: str, name: str) -> str:
    if architecture == "LinformerForSequenceClassification":
        return f'''```python
from transformers import AutoModelForSequenceClassification, AutoTokenizer, pipeline

model_dir = "{name}"  # this directory (or its Hub repository id)
tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
model = AutoModelForSequenceClassification.from_pretrained(model_dir, trust_remote_code=True).eval()
batch = tokenizer(["a gripping film", "dull"], padding=True, truncation=True, return_tensors="pt")
print(model(**batch).logits.softmax(-1), model.config.id2label)

classify = pipeline("text-classification", model=model_dir, trust_remote_code=True)
print(classify("a gripping film"))
```'''
    return f'''```python
from transformers import AutoModelForMaskedLM, AutoTokenizer, pipeline

model_dir = "{name}"  # this directory (or its Hub repository id)
tokenizer = AutoTokenizer.from_pretrained(model_dir, trust_remote_code=True)
model = AutoModelForMaskedLM.from_pretrained(model_dir, trust_remote_code=True).eval()
fill = pipeline("fill-mask", model=model_dir, trust_remote_code=True)
print(fill("Return the <mask> of arguments."))
```'''


def evaluations(run_dir: Path | None, num_updates) -> list[dict]:
    """The ``eval_SPLIT.json`` records of this checkpoint (same number of updates)."""
    if run_dir is None:
        return []
    found = []
    for split in ("valid", "test"):
        record = read_json(run_dir / f"eval_{split}.json")
        if record is not None and record.get("num_updates") == num_updates and "accuracy" in record:
            found.append(record)
    return found


def write_model_card(path: Path, *, checkpoint: str, state: dict, config, data_dir: str, name: str,
                     parameters: int) -> None:
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    cfg = state.get("cfg")
    history = state.get("optimizer_history") or [{}]
    num_updates = history[-1].get("num_updates")
    architecture = config.architectures[0]
    pipeline_tag, task_title = HUB_TASK[architecture]
    classifier = architecture == "LinformerForSequenceClassification"
    meta = read_json(os.path.join(data_dir, "meta.json")) if classifier else None
    task = (meta or {}).get("task")
    run_dir = run_directory(checkpoint)
    run = read_json(run_dir / "run.json") if run_dir is not None else None
    corpus, corpus_dir = corpus_settings(data_dir, meta)
    corpus_text, datasets, english = corpus_description(corpus)

    from linformer_data_prep.finetune_tasks import TASKS

    spec = TASKS.get(task) if task else None
    eval_results, score_rows = [], []
    if spec is not None:
        datasets = [hub_id(spec.hub_dataset)] + datasets
        english = True  # GLUE's and IMDB's texts are English
        for record in evaluations(run_dir, num_updates):
            split = "validation" if record["split"] == "valid" else record["split"]
            eval_results.append(EvalResult(
                task_type=pipeline_tag, task_name=task_title, dataset_type=hub_id(spec.hub_dataset),
                dataset_name=TASK_TITLES.get(task, task), dataset_config=spec.hub_dataset.partition(":")[2] or None,
                dataset_split=split, metric_type="accuracy", metric_name="Accuracy", metric_value=round(record["accuracy"], 4)))
            score_rows.append(f"| {split} | accuracy | {record['accuracy']:.2f} % | {record.get('correct')} / {record.get('total')} |")
    stored = (state.get("extra_state") or {}).get("val_loss")
    metric = cfg_value(cfg, "checkpoint.best_checkpoint_metric", "loss")
    if stored is not None and not score_rows:
        unit = " (bits per token)" if metric == "loss" and not classifier else ""
        score_rows.append(f"| validation (fairseq's, when this checkpoint was saved) | {metric}{unit} | {float(stored):.4f} | |")

    data = ModelCardData(
        license=LICENSE, language=["en"] if english else None, library_name="transformers", pipeline_tag=pipeline_tag,
        tags=["linformer", "roberta", "fairseq", "linformer-fairseq"], datasets=datasets or None,
        metrics=["accuracy"] if eval_results else None, model_name=name, eval_results=eval_results or None)

    what = (f"fine-tuned for {TASK_TITLES.get(task, task or 'sequence classification')}" if classifier
            else "pretrained with masked language modelling")
    lines = [f"# {name}", "",
             f"A Linformer RoBERTa encoder {what}, trained with fairseq and the linformer-fairseq plugin and "
             "exported to `transformers` by `linformer-export-hf`. The export computes what fairseq computes (the "
             "attention code is the plugin's own; outputs were compared on a padded batch before it was written).",
             "", "## Model", "",
             f"- {config.num_hidden_layers} layers, hidden size {config.hidden_size}, {config.num_attention_heads} heads, "
             f"feed-forward {config.intermediate_size}, activation `{config.hidden_act}`, "
             f"{'pre-LN, a final LayerNorm after the last layer' if config.pre_layer_norm else 'post-LN'}; {parameters:,} parameters",
             f"- inputs of at most {config.max_position_embeddings} tokens (special tokens included); vocabulary "
             f"{config.vocab_size} (SentencePiece pieces in fairseq's dictionary order)",
             *attention_lines(config)]
    if classifier:
        lines.append("- labels: " + ", ".join(f"{i} = `{label}`" for i, label in sorted(config.id2label.items())))

    lines += ["", "## Training", "", f"- pretraining corpus: {corpus_text}"]
    if corpus is not None:
        lines.append(f"- tokenizer: SentencePiece {corpus.get('spm_model_type', '')} model with a vocabulary of "
                     f"{corpus.get('vocab_size')} pieces, learned on that corpus by `linformer-prepare-corpus` ({corpus_dir})")
    if classifier:
        if meta is not None:
            settings = meta.get("settings") or {}
            source = settings.get("hub_dataset") or (spec.hub_dataset if spec and not settings.get("source") else settings.get("source"))
            splits = ", ".join(f"{split} {count:,}" for split, count in (meta.get("splits") or {}).items())
            lines.append(f"- fine-tuning data: {TASK_TITLES.get(task, task)} from `{source}`: {splits} examples "
                         f"(`linformer-prepare-finetune`; texts longer than {meta.get('max_tokens')} tokens cut: "
                         f"{sum((meta.get('truncated_rows') or {}).values())} examples)")
        else:
            lines.append(f"- fine-tuning data: not recorded (no meta.json in {data_dir})")
        if run is not None:
            lines.append(f"- fine-tuned from `{run.get('pretrained_checkpoint')}` by `linformer-finetune` (config "
                         f"`{run.get('config')}`, status {run.get('status')}, precision {run.get('precision')})")
    world = cfg_value(cfg, "distributed_training.distributed_world_size", 1) or 1
    update_freq = (cfg_value(cfg, "optimization.update_freq", [1]) or [1])[0]
    batch, max_tokens = cfg_value(cfg, "dataset.batch_size"), cfg_value(cfg, "dataset.max_tokens")
    per_update = (f"{batch * update_freq * world} sentences" if batch
                  else f"up to {max_tokens * update_freq * world} tokens" if max_tokens else "batches of unrecorded size")
    lr = cfg_value(cfg, "optimization.lr")
    lines += [f"- fairseq task `{cfg_value(cfg, 'task._name')}`, criterion `{cfg_value(cfg, 'criterion._name')}`, "
              f"optimizer `{cfg_value(cfg, 'optimizer._name')}`, learning rate {lr[0] if isinstance(lr, list) else lr} "
              f"(`{cfg_value(cfg, 'lr_scheduler._name')}` schedule, {cfg_value(cfg, 'lr_scheduler.warmup_updates', 0)} "
              "warmup updates)",
              f"- {num_updates} updates of {per_update} (max_update {cfg_value(cfg, 'optimization.max_update')}), "
              f"seed {cfg_value(cfg, 'common.seed')}, dropout {config.hidden_dropout_prob}, attention dropout "
              f"{config.attention_probs_dropout_prob}"]

    lines += ["", "## Evaluation", ""]
    if score_rows:
        lines += ["| split | metric | value | examples |", "| --- | --- | --- | --- |", *score_rows]
    else:
        lines.append(f"No evaluation of this checkpoint ({num_updates} updates) was recorded.")

    lines += ["", "## How to use", "",
              "The model's code is in this directory (`modeling_linformer.py` and the attention files), so loading "
              "needs `trust_remote_code=True`; read the code first, as for any remote code. `transformers` 5 and "
              "`sentencepiece` are needed, fairseq is not.", "", usage(architecture, name), "",
              "`attn_implementation=\"sdpa\"` (the default) or `\"eager\"`, `gradient_checkpointing_enable()` and "
              "`resize_token_embeddings()` work as for other `transformers` models.",
              "", "## Limitations", "",
              f"- Inputs longer than {config.max_position_embeddings} tokens are refused, not truncated silently: pass "
              "`truncation=True` to the tokenizer. Linformer's projections are learned for this n; a longer n needs "
              "fine-tuning with a larger `--max-positions` in fairseq.",
              "- Pad on the right (the tokenizer's default): the classification head reads the first token, `<s>`.",
              "- The tokenizer is the pretraining corpus's SentencePiece model: text in other languages or scripts "
              "is split into many pieces or `<unk>`.",
              "- Scores come from the records listed above; a model trained on a small sample or for few updates is a "
              "pipeline check, not a useful classifier or language model."]
    if classifier and spec is not None:
        lines.append(f"- It predicts only {TASK_TITLES.get(task, task)}'s labels; its biases are those of its data.")
    lines += ["", "## License", "",
              "MIT, as linformer-fairseq and fairseq. The training data keep their own licences."]
    ModelCard(f"---\n{data.to_yaml()}\n---\n\n" + "\n".join(lines) + "\n").save(path)
