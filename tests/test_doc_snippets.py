"""Every Python snippet of README.md and docs/*.md says whether the tests run it (docs/snippets.md),
and those that run compile. The runs themselves need the quick start's outputs: tests/test_quickstart.py."""

import pytest

from tests.doc_snippets import AFTER_THE_QUICK_START, Snippet, python_snippets

SNIPPETS = python_snippets()


def test_the_extraction_sees_the_known_snippets():
    names = [snippet.name for snippet in SNIPPETS]
    assert any(name.startswith("README.md:") for name in names)
    assert sum(name.startswith("docs/export.md:") for name in names) >= 2


def test_marks_are_read_and_unmarked_blocks_are_found(tmp_path):
    document = tmp_path / "doc.md"
    document.write_text("text\n\n<!-- not runnable: needs a GPU -->\n```python\nimport torch\n```\n\n"
                        "```bash\nls\n```\n\n```python\nprint(1)\nprint(2)\n```\n")
    gpu, unmarked = python_snippets([str(document)])
    assert (gpu.kind, gpu.detail, gpu.line, gpu.code) == ("not runnable", "needs a GPU", 4, "import torch\n")
    assert (unmarked.kind, unmarked.prints()) == (None, 2)


@pytest.mark.parametrize("snippet", SNIPPETS, ids=lambda snippet: snippet.name)
def test_every_python_snippet_is_marked(snippet: Snippet):
    assert snippet.kind is not None, (f"{snippet.name}: mark it <!-- runnable: {AFTER_THE_QUICK_START} --> or "
                                      "<!-- not runnable: REASON --> on the line above (docs/snippets.md)")
    if snippet.kind == "runnable":
        assert snippet.detail == AFTER_THE_QUICK_START, f"{snippet.name}: the tests run snippets only {AFTER_THE_QUICK_START}"
        compile(snippet.code, snippet.name, "exec")
    else:
        assert len(snippet.detail) > 5, f"{snippet.name}: say why it is not run"
