"""``fairseq-hydra-train`` with this plugin imported first, each rank recording the memory it used.

fairseq-hydra-train imports ``common.user_dir`` only inside each worker, after its distributed
launch; importing the plugin before that puts its CPU data-parallel support and checkpoint
handling in place for the launch itself. Each worker trains through
``launch.resources.train_and_record`` (fairseq's ``train.main``, then its peak GPU and host memory
in SAVE_DIR/resources/). The launchers run ``python -m linformer_fairseq.cli.hydra_train`` (under
torchrun: ``torchrun ... -m linformer_fairseq.cli.hydra_train``).
"""

import fairseq_cli.hydra_train

from linformer_fairseq import plugin  # noqa: F401  (registers the plugin, applies its fairseq patches)
from linformer_fairseq.launch.resources import train_and_record

if __name__ == "__main__":
    fairseq_cli.hydra_train.pre_main = train_and_record  # what each worker runs (fairseq's train.main, recorded)
    fairseq_cli.hydra_train.cli_main()
