"""Build our model in-process exactly as ``fairseq-train`` would, from command-line flags."""

import os

from fairseq import options, tasks

PLUGIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "linformer_fairseq")


def write_dictionary(directory, size=40):
    os.makedirs(directory, exist_ok=True)
    path = os.path.join(directory, "dict.txt")
    with open(path, "w") as f:
        for i in range(size):
            f.write(f"w{i} {1000 - i}\n")
    return str(directory)


def parse(data_dir, *flags, task="masked_lm", arch="linformer_roberta_tiny"):
    parser = options.get_training_parser()
    return options.parse_args_and_arch(
        parser, [str(data_dir), "--user-dir", PLUGIN_DIR, "--task", task, "--arch", arch, "--cpu", *map(str, flags)]
    )


def build_model(data_dir, *flags, **kwargs):
    args = parse(data_dir, *flags, **kwargs)
    task = tasks.setup_task(args)
    return task.build_model(args), task


def tokens_for(dictionary, lengths, seed=0, left_pad=False):
    """A padded batch of random sentences (BOS ... EOS) and each sentence alone."""
    import torch

    g = torch.Generator().manual_seed(seed)
    alone = []
    for n in lengths:
        body = torch.randint(dictionary.nspecial, len(dictionary), (n - 2,), generator=g)
        alone.append(torch.cat([torch.tensor([dictionary.bos()]), body, torch.tensor([dictionary.eos()])]))
    from fairseq.data import data_utils

    batch = data_utils.collate_tokens(alone, dictionary.pad(), left_pad=left_pad)
    return batch, alone
