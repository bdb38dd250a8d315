"""An order-preserving, bounded-memory parallel map over batches (``--workers``).

At most ``2 * workers`` batches are in flight, so a stream of any length (Wikipedia) is processed in
bounded memory; ``multiprocessing.Pool.imap`` would read its input ahead without limit.
``workers <= 1`` runs in this process, which is what tests and small corpora use.
"""
import multiprocessing
from collections import deque
from typing import Callable, Iterable, Iterator, List, Optional


def _pool_context():
    # fork: workers inherit the loaded modules instead of re-importing the (heavy) __main__ module
    methods = multiprocessing.get_all_start_methods()
    return multiprocessing.get_context("fork" if "fork" in methods else None)


def ordered_map(
    function: Callable, batches: Iterable, workers: int, initializer: Optional[Callable] = None, initargs: tuple = ()
) -> Iterator:
    """``function(batch)`` for each batch, in input order; ``initializer(*initargs)`` runs once per worker."""
    if workers <= 1:
        if initializer is not None:
            initializer(*initargs)
        for batch in batches:
            yield function(batch)
        return
    with _pool_context().Pool(workers, initializer=initializer, initargs=initargs) as pool:
        pending = deque()
        for batch in batches:
            pending.append(pool.apply_async(function, (batch,)))
            if len(pending) >= 2 * workers:
                yield pending.popleft().get()
        while pending:
            yield pending.popleft().get()


def batched(items: Iterable, size: int) -> Iterator[List]:
    batch = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch
