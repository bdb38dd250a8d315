"""One replaced fairseq function: what it replaces, the signature it was written against, and the
check that refuses to replace anything else."""

import inspect
from dataclasses import dataclass, field
from typing import Any, Callable, Optional

from ..errors import LinformerError


class IncompatibleFairseq(LinformerError):
    """The installed fairseq is not the one a patch was written for."""


def signature_of(function: Callable) -> str:
    return str(inspect.signature(function))


@dataclass
class Patch:
    owner: Any  # the module or class that holds the attribute
    name: str
    replacement: Callable
    signature: str  # of the original, as the patch was written for (fairseq 0.12)
    why: str
    original: Optional[Callable] = field(default=None, repr=False)

    @property
    def where(self) -> str:
        return f"{getattr(self.owner, '__name__', self.owner)}.{self.name}"

    def check(self, current: Callable) -> None:
        found = signature_of(current)
        if found != self.signature:
            raise IncompatibleFairseq(
                f"{self.where}{found} is not {self.name}{self.signature}, which linformer_fairseq replaces to "
                f"{self.why}; this plugin is written for fairseq 0.12 (see linformer_fairseq/compat/)")

    def apply(self) -> None:
        """Replace the attribute once (a second import of the plugin finds its own replacement)."""
        current = getattr(self.owner, self.name)
        if getattr(current, "linformer_patch", False):
            self.original = self.original or current.linformer_original
            return
        self.check(current)
        self.original = current
        self.replacement.linformer_patch = True
        self.replacement.linformer_original = current
        setattr(self.owner, self.name, self.replacement)

    def call_original(self, *args, **kwargs):
        return self.original(*args, **kwargs)

    def __call__(self, *args, **kwargs):
        return self.replacement(*args, **kwargs)


def replaces(owner: Any, name: str, signature: str, why: str) -> Callable[[Callable], Patch]:
    """Declares the decorated function as the replacement of ``owner.name`` (written against
    ``signature``, to ``why``); the function's name then holds its :class:`Patch`, whose
    ``call_original`` reaches fairseq's own function."""
    def declare(replacement: Callable) -> Patch:
        return Patch(owner, name, replacement, signature, why)
    return declare
