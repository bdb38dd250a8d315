"""Where the repository's data files are: ``configs/`` and ``docs/`` beside the package (a checkout
or an editable install, as the README's commands use it)."""

import os

REPOSITORY = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
CONFIGS = os.path.join(REPOSITORY, "configs")
DOCS = os.path.join(REPOSITORY, "docs")
PLUGIN_DIR = os.path.join(REPOSITORY, "linformer_fairseq")  # for --user-dir / common.user_dir
