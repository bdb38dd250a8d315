"""The Python snippets of README.md and docs/*.md, with the mark above each (docs/snippets.md),
and running one as a user does: a script of its own, from a directory holding ``quickstart_output/``."""

import ast
import glob
import os
import re
import subprocess
import sys
from dataclasses import dataclass
from typing import List, Optional

REPOSITORY = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
DOCUMENTS = [os.path.join(REPOSITORY, "README.md"), *sorted(glob.glob(os.path.join(REPOSITORY, "docs", "*.md")))]
MARK = re.compile(r"^<!--\s*(runnable|not runnable):\s*(.*?)\s*-->$")
AFTER_THE_QUICK_START = "after the quick start"
# importing fairseq configures the root logger, so its INFO records print (fairseq's, not warnings)
FAIRSEQ_LOG_RECORD = re.compile(r"^(INFO|DEBUG):fairseq(\.[\w.]+)?:")


@dataclass
class Snippet:
    document: str
    line: int  # of the opening fence, 1-based
    kind: Optional[str]  # "runnable", "not runnable", or None (unmarked)
    detail: str  # the context of a runnable snippet, or the reason it is not run
    code: str

    @property
    def name(self) -> str:
        return f"{os.path.relpath(self.document, REPOSITORY)}:{self.line}"

    def prints(self) -> int:
        """How many print(...) calls the code makes, as written."""
        return sum(isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "print"
                   for node in ast.walk(ast.parse(self.code)))


def python_snippets(documents: List[str] = DOCUMENTS) -> List[Snippet]:
    snippets = []
    for document in documents:
        lines = open(document, encoding="utf-8").read().splitlines()
        number = 0
        while number < len(lines):
            fence = lines[number].strip()
            if not fence.startswith("```"):
                number += 1
                continue
            end = next((i for i in range(number + 1, len(lines)) if lines[i].strip() == "```"), len(lines))
            if fence[3:].strip().lower() in ("python", "py", "python3"):
                previous = next((lines[i].strip() for i in range(number - 1, -1, -1) if lines[i].strip()), "")
                mark = MARK.match(previous)
                snippets.append(Snippet(document, number + 1, mark and mark.group(1), mark.group(2) if mark else "",
                                        "\n".join(lines[number + 1:end]) + "\n"))
            number = end + 1
    return snippets


def run_snippet(snippet: Snippet, quickstart_output, workdir) -> subprocess.CompletedProcess:
    """The snippet as a script of its own in this venv's Python, from ``workdir`` where
    ``quickstart_output`` is the quick start's output directory; no Hub, no progress bars."""
    os.makedirs(workdir, exist_ok=True)
    link = os.path.join(workdir, "quickstart_output")
    if not os.path.exists(link):
        os.symlink(quickstart_output, link)
    script = os.path.join(workdir, "snippet.py")
    with open(script, "w") as f:
        f.write(snippet.code)
    env = {name: value for name, value in os.environ.items() if name != "PYTHONPATH"}
    env.update(OMP_NUM_THREADS="1", HF_HUB_OFFLINE="1", HF_HUB_DISABLE_PROGRESS_BARS="1")
    return subprocess.run([sys.executable, script], capture_output=True, text=True, cwd=workdir, env=env, timeout=600)
