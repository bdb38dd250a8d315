"""Where the project's data files are, and where its tools write by default.

``configs/`` and ``sample_data/`` sit at the top of the repository; an installed package (a wheel,
a non-editable ``pip install .``) carries them inside itself as package data (setup.py), so the
launchers and the quick start run from either. ``docs/`` exists in a checkout only (the tools that
rewrite it are the developers'). ``PLUGIN_DIR`` is the plugin's directory for ``--user-dir`` /
``common.user_dir``.
"""

import os

PLUGIN_DIR = os.path.dirname(os.path.abspath(__file__))
REPOSITORY = os.path.dirname(PLUGIN_DIR)
# Installed: the data is inside the package. Otherwise a checkout or an editable install, whose data
# stays beside it (checked in this order: a site-packages may hold some other distribution's configs/).
INSTALLED = os.path.isdir(os.path.join(PLUGIN_DIR, "configs"))
CONFIGS = os.path.join(PLUGIN_DIR if INSTALLED else REPOSITORY, "configs")
SAMPLE_DATA = os.path.join(PLUGIN_DIR if INSTALLED else REPOSITORY, "sample_data")
DOCS = os.path.join(REPOSITORY, "docs")


def output_root() -> str:
    """The default parent of the tools' outputs (quickstart_output/, runs/, data/, ...): the checkout,
    as the README's commands use it, or the working directory when the package is installed (never
    site-packages)."""
    return os.getcwd() if INSTALLED else REPOSITORY
