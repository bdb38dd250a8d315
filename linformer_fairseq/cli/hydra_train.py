"""``fairseq-hydra-train`` with this plugin imported first.

fairseq-hydra-train imports ``common.user_dir`` only inside each worker, after its distributed
launch; importing the plugin before that puts its CPU data-parallel support and checkpoint
handling in place for the launch itself. The launchers run ``python -m linformer_fairseq.cli.hydra_train``
(under torchrun: ``torchrun ... -m linformer_fairseq.cli.hydra_train``).
"""

from fairseq_cli.hydra_train import cli_main

from linformer_fairseq import plugin  # noqa: F401  (registers the plugin, applies its fairseq patches)

if __name__ == "__main__":
    cli_main()
