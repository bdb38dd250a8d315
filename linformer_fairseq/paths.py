"""Where the repository's data files are: ``configs/`` and ``docs/`` beside the package (a checkout
or an editable install, as the README's commands use it), and the plugin's directory for
``--user-dir`` / ``common.user_dir``."""

import os

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(PLUGIN_DIR)
CONFIGS = os.path.join(REPOSITORY, "configs")
DOCS = os.path.join(REPOSITORY, "docs")
