"""linformer_data_prep.debian_docs: the RST and POD cleaners, a real .deb through the extraction path,
the output as a linformer-prepare-corpus source, errors that name the package, and (slow) the real
packages from Debian's archive."""
import gzip
import shutil
import stat
import subprocess
import textwrap
from pathlib import Path

import pytest

from linformer_data_prep import debian_docs, debian_packages, pretraining_corpus
from linformer_data_prep.debian_docs import build_corpus
from linformer_data_prep.debian_packages import glob_regex
from linformer_data_prep.errors import DataPrepError
from linformer_data_prep.pod_prose import pod_inline, pod_paragraphs
from linformer_data_prep.prose import is_prose
from linformer_data_prep.rst_prose import clean_inline, rst_paragraphs
from linformer_fairseq.atomic_files import is_complete


def rst(text):
    return rst_paragraphs(textwrap.dedent(text))


# -- the reStructuredText cleaner ------------------------------------------------------------------


def test_headings_and_transitions_are_dropped_and_paragraphs_reflowed():
    assert rst("""
        ================
        Control Group v2
        ================

        The first paragraph of this section
        runs over two lines.

        Second section
        --------------

        Another paragraph, with  extra   spaces.

        ----------

        After the transition comes the last paragraph.
        """) == [
        "The first paragraph of this section runs over two lines.",
        "Another paragraph, with extra spaces.",
        "After the transition comes the last paragraph.",
    ]


def test_literal_blocks_are_dropped_and_the_double_colon_reduced():
    assert rst("""
        The tree can be grabbed with::

          git clone git://git.kernel.org/linux.git
          cd linux

        The expanded form leaves no colon. ::

            make menuconfig

        ::

            echo only code after a lone marker

        Back to prose after the code blocks.

        - A list item that ends in code::

              $ make

          The item goes on with more text.
        """) == [
        "The tree can be grabbed with:",
        "The expanded form leaves no colon.",
        "Back to prose after the code blocks.",
        "A list item that ends in code:",
        "The item goes on with more text.",
    ]


def test_directives_are_dropped_with_their_bodies_except_prose_ones():
    assert rst("""
        .. SPDX-License-Identifier: GPL-2.0

        .. _label-of-the-section:

        .. toctree::
           :maxdepth: 2

           intro
           usage

        .. code-block:: c

           int main(void) { return 0; }

        .. kernel-doc:: include/linux/list.h
           :internal:

        .. note:: A note is prose and it
           is kept as one paragraph.

        .. warning::
           :class: strong

           Warnings are kept too, without their options.

        .. function:: frobnicate(x, y=None)
                      frobnicate(x, *, z)
           :noindex:

           Return the frobnicated form of the value given.

           .. versionchanged:: 3.2
              Added the keyword-only parameter to the function.

           .. versionadded:: 3.1

        .. c:function:: int foo(int bar)

           This C function returns the foo of its argument.

        .. only:: html

           Content shown only in the HTML build is still prose.

        .. |name| replace:: the substituted words

        .. This is a comment that
           runs over two lines and is dropped.

        .. [#f1] A footnote is dropped as well.
        """) == [
        "A note is prose and it is kept as one paragraph.",
        "Warnings are kept too, without their options.",
        "Return the frobnicated form of the value given.",
        "Added the keyword-only parameter to the function.",
        "This C function returns the foo of its argument.",
        "Content shown only in the HTML build is still prose.",
    ]


def test_tables_and_field_lists_are_dropped():
    assert rst("""
        :Date: October, 2015
        :Author: Tejun Heo <tj@kernel.org>

        +------------+----------------------------------+
        | Header     | The cell text is not prose here. |
        +============+==================================+
        | Body row   | More cell text in the grid table. |
        +------------+----------------------------------+

        =====  ==========================================
        Name   Description
        =====  ==========================================
        foo    This row of the simple table is dropped.
        bar    And so is this row of the simple table.
        =====  ==========================================

        :param value: The value that the function frobnicates.
            It continues on an indented line.
        :returns: The frobnicated value of the argument.

        The text after the tables and fields is kept.
        """) == ["The text after the tables and fields is kept."]


def test_list_markers_and_definition_terms():
    assert rst("""
        - The first bullet is a full sentence.
        - short item
        * Another bullet, with a continuation
          line that is reflowed.

        1. An enumerated item that reads as a sentence.
        #. An auto-numbered item, also a sentence here.
        (a) A lettered item that is kept as well.

        term
            The definition of the term is prose.

        | A line block line that reads as a sentence.
        """) == [
        "The first bullet is a full sentence.",
        "Another bullet, with a continuation line that is reflowed.",
        "An enumerated item that reads as a sentence.",
        "An auto-numbered item, also a sentence here.",
        "A lettered item that is kept as well.",
        "The definition of the term is prose.",
        "A line block line that reads as a sentence.",
    ]


def test_inline_markup_is_reduced_to_its_text():
    assert clean_inline("Call :c:func:`kmalloc` and :func:`~os.path.join` or :meth:`!dict.get`.") == \
        "Call kmalloc and join or dict.get."
    assert clean_inline("See :ref:`the guide <submitting>` and :ref:`split_changes` and :doc:`/process/coding-style`.") == \
        "See the guide and split changes and coding style."
    assert clean_inline("Read `the docs <https://example.org/>`_ and `this one`__ or `<https://x.org>`_.") == \
        "Read the docs and this one or https://x.org."
    assert clean_inline("A **bold** word, an *emphasised* one and ``literal *text*`` stay.") == \
        "A bold word, an emphasised one and literal *text* stay."
    assert clean_inline("Use |version| of Python_ and `interpreted text` here.") == \
        "Use version of Python and interpreted text here."
    assert clean_inline("A claim [1]_ with a footnote [#f1]_ and a citation [CIT2002]_.") == \
        "A claim with a footnote and a citation."
    assert clean_inline("Named in :pep:`8` and :rfc:`2616#section-3`, an _`inline target`.") == \
        "Named in PEP 8 and RFC 2616, an inline target."
    assert clean_inline(r"char \*p and *args keep their stars; __init__ and a|b|c stay.") == \
        "char *p and *args keep their stars; __init__ and a|b|c stay."


def test_doctests_and_paragraphs_without_a_sentence_are_dropped():
    assert rst("""
        >>> print("doctest")
        doctest

        **Source code:** :source:`Lib/functools.py`

        Too short.

        0x1f 0x2f 0x3f 0x4f 0x5f.

        A real sentence with enough words survives.
        """) == ["A real sentence with enough words survives."]
    assert is_prose("Ends with a colon, introducing something:")
    assert not is_prose("No final punctuation in this one")
    assert not is_prose("x = foo(bar) + baz(qux, 1234);")


# -- the POD cleaner -----------------------------------------------------------------------------


def test_pod_cleaner():
    assert pod_inline("Use C<open> and B<I<nested>> codes, C<< $a <=> $b >>, C<<=> and E<lt>tagE<gt>.") == \
        "Use open and nested codes, $a <=> $b, <= and <tag>."
    assert pod_inline("See L<perlfunc/open>, L<the manual|perlop> and L</Signatures>X<index>.") == \
        "See open in perlfunc, the manual and Signatures."
    text = textwrap.dedent("""\
        =head1 NAME
        X<subroutine>

        perlsub - Perl subroutines

        =head1 DESCRIPTION

        Like many languages, Perl provides for
        user-defined subroutines via C<sub>.

            sub NAME BLOCK   # a verbatim paragraph is code

        =over 4

        =item * The first item of the list is a sentence.

        =item 2. A numbered item is a sentence as well.

        =item open FILEHANDLE,MODE

        =back

        =begin html

        <p>An HTML paragraph is not text, even though it is long enough.</p>

        =end html

        =for comment This comment is not part of the prose either.

        =cut

        print "code after =cut is not documentation, even as a sentence.";

        =pod

        Back in the documentation with a final sentence.
        """)
    assert pod_paragraphs(text) == [
        "Like many languages, Perl provides for user-defined subroutines via sub.",
        "The first item of the list is a sentence.",
        "A numbered item is a sentence as well.",
        "Back in the documentation with a final sentence.",
    ]


def test_glob_regex():
    pattern = glob_regex("usr/share/doc/x/Documentation/**/*.rst.gz")
    assert pattern.match("usr/share/doc/x/Documentation/a.rst.gz")
    assert pattern.match("usr/share/doc/x/Documentation/a/b/c.rst.gz")
    assert not pattern.match("usr/share/doc/x/Documentation/a/b/c.rst")
    assert not glob_regex("usr/*/pod/*.pod").match("usr/a/b/pod/x.pod")


# -- a real .deb through the same path -------------------------------------------------------------

PROSE = [
    "The kernel schedules tasks on every processor that is online. It keeps one run queue per processor.",
    "Memory is allocated in pages, and the allocator groups free pages by their order. Larger orders are rarer.",
    "A driver registers with its bus, and the bus matches it against the devices it finds. Probing follows.",
    "Interrupts are handled in two halves: the first acknowledges the device and the second does the work.",
    "Locks protect data, not code, and every lock has a documented order with respect to the others.",
]


def _gz(path: Path, text: str):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(text.encode("utf-8")))


def _rst_file(title: str, paragraphs):
    body = "\n\n".join(textwrap.fill(p, 60) for p in paragraphs)
    return f"{title}\n{'=' * len(title)}\n\n{body}\n\n.. code-block:: c\n\n   int x;\n"


def build_deb(tmp_path: Path, package: str, files: dict) -> Path:
    """A real .deb of ``package`` (version 9.9-test) holding ``files`` {path: bytes}, built with dpkg-deb."""
    tree = tmp_path / f"tree-{package}"
    (tree / "DEBIAN").mkdir(parents=True)
    (tree / "DEBIAN" / "control").write_text(
        f"Package: {package}\nVersion: 9.9-test\nArchitecture: all\nMaintainer: Test <test@example.org>\n"
        f"Description: test package\n", encoding="utf-8")
    for name, data in files.items():
        path = tree / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    out = tmp_path / f"{package}_9.9-test_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "--build", str(tree), str(out)], check=True,
                   stdout=subprocess.DEVNULL)
    return out


@pytest.fixture(scope="module")
def deb_cache(tmp_path_factory):
    """A cache holding .deb files of linux-doc-6.1 and python3.11-doc built here (no download)."""
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    tmp = tmp_path_factory.mktemp("debs")
    docs = "usr/share/doc/linux-doc-6.1/Documentation"
    kernel = {
        f"{docs}/scheduler/index.rst.gz": gzip.compress(_rst_file("Scheduler", PROSE[:2]).encode()),
        f"{docs}/driver-api/driver.rst.gz": gzip.compress(_rst_file("Drivers", PROSE[2:4]).encode()),
        # the same document twice: written once
        f"{docs}/locking/locks.rst.gz": gzip.compress(_rst_file("Locks", PROSE[4:]).encode()),
        f"{docs}/locking/copy-of-locks.rst.gz": gzip.compress(_rst_file("Locks", PROSE[4:]).encode()),
        # excluded by the package's table entry
        f"{docs}/translations/it_IT/index.rst.gz": gzip.compress(_rst_file("Indice", ["Questo testo non è in inglese ma è lungo abbastanza."]).encode()),
        # not matched by the glob
        f"{docs}/notes.txt.gz": gzip.compress(b"A plain text file that the glob does not match at all.\n"),
        # no prose at all: no document
        f"{docs}/tables.rst.gz": gzip.compress(b"Title\n=====\n\n.. flat-table::\n\n   * - a\n     - b\n"),
        "usr/share/doc/linux-doc-6.1/copyright": b"Files: *\nLicense: GPL-2\n",
    }
    python = {
        "usr/share/doc/python3.11/html/_sources/library/os.rst.txt": _rst_file(
            "os", ["The :mod:`os` module provides a portable way of using operating system dependent functionality.",
                   "Use :func:`open` to read or write a file, and :func:`os.listdir` to list a directory."]).encode(),
        "usr/share/doc/python3.11-doc/copyright": b"License: PSF-2.0\n",
    }
    cache = tmp / "cache"
    cache.mkdir()
    for package, files in (("linux-doc-6.1", kernel), ("python3.11-doc", python)):
        shutil.move(build_deb(tmp, package, files), cache)
    return cache


@pytest.fixture
def no_download(monkeypatch):
    real = debian_packages._require

    def require(tool, package):
        assert tool != "apt-get", f"tried to download {package} although its .deb is cached"
        return real(tool, package)

    monkeypatch.setattr(debian_packages, "_require", require)


def test_deb_from_cache_to_corpus_directory(deb_cache, tmp_path, no_download):
    out = tmp_path / "corpus"
    info = build_corpus(out, ["linux-doc-6.1", "python3.11-doc"], deb_cache)
    assert is_complete(out) and not info["reused"]
    kernel = (out / "linux-doc-6.1.txt").read_text(encoding="utf-8")
    # files in path order (driver-api, locking/copy-of-locks, locking/locks (a duplicate), scheduler), one per document
    assert kernel == "\n".join(PROSE[2:4]) + "\n\n" + PROSE[4] + "\n\n" + "\n".join(PROSE[:2]) + "\n\n"
    python = (out / "python3.11-doc.txt").read_text(encoding="utf-8")
    assert python == ("The os module provides a portable way of using operating system dependent functionality.\n"
                      "Use open to read or write a file, and os.listdir to list a directory.\n\n")
    entry = info["packages"]["linux-doc-6.1"]
    assert entry["version"] == "9.9-test" and entry["documents"] == 3 and entry["duplicates"] == 1
    assert entry["source_files"] == 5  # translations/ and notes.txt.gz are not read
    assert entry["prose_bytes"] == len(kernel.encode("utf-8")) - 3  # the blank lines between documents are not prose
    about = (out / "ABOUT.md").read_text(encoding="utf-8")
    assert "| linux-doc-6.1 | 9.9-test | GPL-2.0" in about and "| python3.11-doc | 9.9-test | PSF-2.0" in about
    assert f"{entry['prose_bytes']:,}" in about
    assert (out / "licences" / "linux-doc-6.1.copyright").read_bytes() == b"Files: *\nLicense: GPL-2\n"

    # a complete output is reused; another package list for it is refused
    mtime = (out / "linux-doc-6.1.txt").stat().st_mtime_ns
    assert build_corpus(out, ["linux-doc-6.1", "python3.11-doc"], deb_cache)["reused"]
    assert (out / "linux-doc-6.1.txt").stat().st_mtime_ns == mtime
    with pytest.raises(DataPrepError, match="already holds a corpus of linux-doc-6.1, python3.11-doc"):
        build_corpus(out, ["linux-doc-6.1"], deb_cache)

    # ... and linformer-prepare-corpus takes it as a .txt source
    args = pretraining_corpus.build_parser().parse_args(
        ["--source", str(out), "--out", str(tmp_path / "prepared"), "--shards", "1", "--valid-docs", "1",
         "--vocab-size", "60", "--max-line-tokens", "62"])
    prepared = pretraining_corpus.prepare_corpus(args)
    assert prepared["collect"]["documents"] == 4
    assert is_complete(tmp_path / "prepared" / "data-bin" / "shard0")
    assert (tmp_path / "prepared" / "data-bin" / "shard0" / "valid.bin").stat().st_size > 0


def test_cli_prints_the_size(deb_cache, tmp_path, capsys, no_download):
    out = tmp_path / "corpus"
    argv = ["--out", str(out), "--packages", "python3.11-doc,linux-doc-6.1", "--cache", str(deb_cache)]
    assert debian_docs.main(argv) == 0
    assert "MB of prose in 4 documents (python3.11-doc 0.0 MB, linux-doc-6.1 0.0 MB); written in" in capsys.readouterr().out
    assert debian_docs.main(argv) == 0  # reused, with the packages in the order given
    assert "MB of prose in 4 documents (python3.11-doc 0.0 MB, linux-doc-6.1 0.0 MB); complete already, reused" in capsys.readouterr().out
    assert debian_docs.main(argv[:3] + ["linux-doc-6.1,python3.11-doc"] + argv[4:]) == 2
    assert "already holds a corpus of python3.11-doc, linux-doc-6.1" in capsys.readouterr().err


def _fake_tool(directory: Path, name: str, script: str):
    directory.mkdir(exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\n" + script + "\n")
    path.chmod(path.stat().st_mode | stat.S_IXUSR)


def test_errors_name_the_package(tmp_path, monkeypatch):
    empty_path = tmp_path / "bin"
    empty_path.mkdir()
    monkeypatch.setenv("PATH", str(empty_path))
    with pytest.raises(DataPrepError, match="python3.11-doc: apt-get is not installed"):
        debian_packages.fetch_deb("python3.11-doc", tmp_path / "cache")

    _fake_tool(empty_path, "apt-get", 'echo "E: Unable to locate package $2" >&2; exit 100')
    with pytest.raises(DataPrepError, match=r"apt-get download nosuch-doc failed \(exit 100\): E: Unable to locate package nosuch-doc .*apt-get update"):
        debian_packages.fetch_deb("nosuch-doc", tmp_path / "cache")
    assert not any(tmp_path.joinpath("cache").iterdir())  # the download directory is gone

    with pytest.raises(DataPrepError, match="no source table entry for nosuch-doc"):
        build_corpus(tmp_path / "out", ["nosuch-doc"], tmp_path / "cache")


def test_damaged_deb_is_reported(tmp_path, monkeypatch):
    if shutil.which("dpkg-deb") is None:
        pytest.skip("dpkg-deb is not installed")
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "perl-doc_1.0_all.deb").write_bytes(b"not a debian package")
    with pytest.raises(DataPrepError, match="perl-doc: dpkg-deb --field .* failed"):
        build_corpus(tmp_path / "out", ["perl-doc"], cache)
    assert not (tmp_path / "out").exists()


# -- the real packages -----------------------------------------------------------------------------


def _apt_has(package: str) -> bool:
    if shutil.which("apt-get") is None or shutil.which("apt-cache") is None:
        return False
    policy = subprocess.run(["apt-cache", "policy", package], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    return "Candidate:" in policy.stdout and "Candidate: (none)" not in policy.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_real_packages_give_20_mb_of_prose(tmp_path):
    """Downloads the default packages (about 60 MB of .deb files) and cleans them: about 20 s."""
    if not all(_apt_has(package) for package in debian_docs.DEFAULT_PACKAGES):
        pytest.skip(f"apt-get cannot download {', '.join(debian_docs.DEFAULT_PACKAGES)} here")
    info = build_corpus(tmp_path / "corpus", list(debian_docs.DEFAULT_PACKAGES), tmp_path / "cache")
    assert info["total_prose_bytes"] >= 20 * 2**20, info
    for package, entry in info["packages"].items():
        assert entry["prose_bytes"] > 4 * 10**6, (package, entry)
    text = (tmp_path / "corpus" / "python3.11-doc.txt").read_text(encoding="utf-8")
    assert ":func:`" not in text and "``" not in text and ".. versionadded::" not in text
