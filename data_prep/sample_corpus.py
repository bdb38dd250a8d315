"""Write a small real-text pretraining corpus that needs no network: the Python documentation.

    linformer-sample-corpus --out data/sample_corpus
    linformer-prepare-corpus --source data/sample_corpus --out data/sample_pretrain \\
        --valid-docs 20 --vocab-size 2000

Every CPython ships the language reference and library documentation topics that ``help()``
shows, as ``pydoc_data.topics.topics`` (about 0.5 MB of English prose; Python Software Foundation
License, https://docs.python.org/3/license.html). Each section of a topic (a heading underlined with
``*``, ``=``, ``-``, ...) becomes one document; its prose paragraphs are reflowed to one line each;
code, grammar rules and interactive examples are left out; a section that an earlier topic already
holds is not repeated. The result is a directory of .txt files in the pretraining format (one
paragraph per line, a blank line between documents), one file per topic, plus ABOUT.md with the
attribution. The text depends on the Python version that runs this.
"""
import re
import sys
from pathlib import Path
from typing import Iterator, List

from linformer_fairseq.atomic_files import atomic_directory, is_complete, mark_complete, read_completion
from linformer_fairseq.launch.console import tool_parser

from .errors import run_command

_UNDERLINE = re.compile(r"^([*=\-~^#\"'+])\1{2,}\s*$")
_SENTENCE_END = (".", "!", "?", ":", '."', ".)", ".'")

ABOUT = """# Sample pretraining corpus: Python documentation topics

Written by `linformer-sample-corpus` from `pydoc_data.topics` of Python {version}.
The text is the Python documentation, Copyright (c) Python Software Foundation, distributed under
the Python Software Foundation License Version 2 (https://docs.python.org/3/license.html).
One file per documentation topic; one paragraph per line; a blank line separates documents
(sections).
"""


def _is_prose(paragraph: List[str]) -> bool:
    text = " ".join(line.strip() for line in paragraph)
    indents = {len(line) - len(line.lstrip()) for line in paragraph[1:]}
    first_indent = len(paragraph[0]) - len(paragraph[0].lstrip())
    nested = any(indent > first_indent + 2 for indent in indents)  # deeper-indented lines: code
    return (
        text.endswith(_SENTENCE_END)
        and not nested
        and ">>>" not in text
        and "::=" not in text
        and any(ch.isalpha() for ch in text)
    )


def _sections(topic_text: str) -> Iterator[List[str]]:
    """Prose paragraphs (one line each) of each section of one topic."""
    lines = topic_text.splitlines()
    section: List[str] = []
    paragraph: List[str] = []

    def flush_paragraph():
        if paragraph and _is_prose(paragraph):
            text = " ".join(line.strip() for line in paragraph)
            section.append(text[2:] if text.startswith("* ") else text)
        paragraph.clear()

    for index, line in enumerate(lines):
        following = lines[index + 1] if index + 1 < len(lines) else ""
        if _UNDERLINE.match(line):
            continue
        if line.strip() and _UNDERLINE.match(following):  # a heading starts a new section
            flush_paragraph()
            if section:
                yield list(section)
                section.clear()
            continue
        if not line.strip():
            flush_paragraph()
        else:
            paragraph.append(line)
    flush_paragraph()
    if section:
        yield list(section)


def write_sample_corpus(out: Path) -> int:
    """Write the corpus directory atomically; return the number of documents. Skips a complete OUT."""
    from pydoc_data.topics import topics

    out = Path(out)
    if is_complete(out):
        return read_completion(out)["documents"]
    documents = 0
    seen = set()
    with atomic_directory(out) as temp:
        for name in sorted(topics):
            # topics quote each other (e.g. "async" repeats sections of "compound"): keep the first copy
            sections = [s for s in _sections(topics[name]) if "\n".join(s) not in seen]
            seen.update("\n".join(s) for s in sections)
            if not sections:
                continue
            safe = re.sub(r"[^A-Za-z0-9_-]", "_", name)
            with open(temp / f"{safe}.txt", "w", encoding="utf-8") as handle:
                for paragraphs in sections:
                    handle.write("\n".join(paragraphs) + "\n\n")
            documents += len(sections)
        (temp / "ABOUT.md").write_text(ABOUT.format(version=sys.version.split()[0]), encoding="utf-8")
    mark_complete(out, {"documents": documents})
    return documents


def main(argv=None) -> int:
    parser = tool_parser("linformer-sample-corpus", __doc__)
    parser.add_argument("--out", required=True, type=Path, help="directory to write (a .txt corpus for --source)")
    args = parser.parse_args(argv)
    return run_command(lambda: write_sample_corpus(args.out), lambda documents: f"{args.out}: {documents} documents")


if __name__ == "__main__":
    sys.exit(main())
