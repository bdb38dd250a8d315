"""The Debian documentation packages the corpus is made of: which files of each package are prose
sources, in which markup, and under which licence. Add a package by adding a :class:`DocSource`."""

from dataclasses import dataclass, field
from typing import Dict, Tuple


@dataclass(frozen=True)
class DocSource:
    """Which files of a Debian package are prose sources, and under which licence."""

    package: str
    include: Tuple[str, ...]  # globs of paths inside the package ("**/" spans directories)
    licence: str
    description: str
    exclude: Tuple[str, ...] = field(default=())
    markup: str = "rst"  # a key of CLEANERS: "rst" (reStructuredText) or "pod" (Perl's POD)


SOURCES: Dict[str, DocSource] = {
    source.package: source
    for source in (
        DocSource(
            "linux-doc-6.1",
            include=("usr/share/doc/linux-doc-6.1/Documentation/**/*.rst.gz",),
            # the translations (Chinese, Japanese, Korean, Italian, Spanish) are not English
            exclude=("usr/share/doc/linux-doc-6.1/Documentation/translations/**",),
            licence=(
                "GPL-2.0 (GNU General Public License version 2, the Linux kernel's licence; a few files "
                "carry dual licences in their SPDX lines, e.g. GPL-2.0 OR CC-BY-4.0, or GFDL-1.1-no-invariants-or-later "
                "for the media API documents)"
            ),
            description="Linux kernel 6.1 documentation, reStructuredText sources (Documentation/**/*.rst)",
        ),
        DocSource(
            "python3.11-doc",
            include=("usr/share/doc/python3.11/html/_sources/**/*.rst.txt",),
            licence=(
                "PSF-2.0 (Python Software Foundation License Version 2; code examples in the documentation are "
                "dual-licensed PSF-2.0 / 0BSD), https://docs.python.org/3.11/license.html"
            ),
            description="Python 3.11 documentation, reStructuredText sources (html/_sources/**/*.rst.txt)",
        ),
        DocSource(
            "perl-doc",
            include=("usr/share/perl/*/pod/*.pod",),
            # the table of contents repeats every heading; perluniprops is tables of Unicode properties
            exclude=("usr/share/perl/*/pod/perltoc.pod", "usr/share/perl/*/pod/perluniprops.pod"),
            licence="GPL-1.0-or-later OR Artistic-1.0-Perl (Perl's licence: the GNU GPL version 1 or later, or the Artistic License)",
            description="Perl 5 core documentation, POD sources (perlfunc, perlop, perlre, the perlfaqs, the perldeltas, ...)",
            markup="pod",
        ),
    )
}
# linux-doc-6.1 and python3.11-doc give 19.3 MB of prose: perl-doc takes the corpus past 20 MB
DEFAULT_PACKAGES = ("linux-doc-6.1", "python3.11-doc", "perl-doc")
