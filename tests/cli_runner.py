"""Run fairseq's command-line tools in a subprocess, as users do, and read their logs."""

import os
import re
import subprocess
import sys

BIN = os.path.dirname(sys.executable)


def run(tool, *args, env=None, timeout=300, check=True):
    """Run ``tool`` (e.g. ``fairseq-train``) from this interpreter's environment; return its log."""
    full_env = dict(os.environ, PYTHONUNBUFFERED="1", OMP_NUM_THREADS="1", **(env or {}))
    proc = subprocess.run([os.path.join(BIN, tool), *map(str, args)], stdout=subprocess.PIPE,
                          stderr=subprocess.STDOUT, text=True, env=full_env, timeout=timeout)
    if check and proc.returncode != 0:
        raise AssertionError(f"{tool} exited with {proc.returncode}:\n{proc.stdout[-6000:]}")
    return proc.stdout if check else proc


def train_losses(log):
    """Per-update training losses that fairseq printed with --log-interval 1."""
    return [float(v) for v in re.findall(r"train_inner \| .*?\bloss=([0-9.]+)", log)]


def tiny_corpus(directory, n_train=300, n_valid=40, seed=0):
    """Sentences of real English text (Python's bundled documentation), one per line."""
    import pydoc_data.topics
    import random

    words = " ".join(pydoc_data.topics.topics.values()).split()
    rng = random.Random(seed)
    os.makedirs(directory, exist_ok=True)
    for split, count in (("train", n_train), ("valid", n_valid)):
        with open(os.path.join(directory, f"{split}.txt"), "w") as f:
            for _ in range(count):
                start = rng.randrange(len(words) - 30)
                f.write(" ".join(words[start:start + rng.randint(4, 30)]) + "\n")
    return directory


def binarize(text_dir, dest):
    run("fairseq-preprocess", "--only-source", "--trainpref", os.path.join(text_dir, "train.txt"),
        "--validpref", os.path.join(text_dir, "valid.txt"), "--destdir", dest, "--workers", "1",
        "--nwordssrc", "400")
    return str(dest)


def run_pipeline(script, out, *args, timeout=900):
    """``bash scripts/SCRIPT --out OUT ARGS`` (quickstart.sh, replicate.sh) with this environment as its VENV;
    the completed process, console output in ``stdout``."""
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return subprocess.run(["bash", os.path.join(root, "scripts", script), "--out", str(out), *args],
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, timeout=timeout,
                          env=dict(os.environ, VENV=os.path.dirname(os.path.dirname(sys.executable))))
