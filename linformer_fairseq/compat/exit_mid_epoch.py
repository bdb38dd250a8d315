"""Let a fairseq process exit cleanly when training stops in the middle of an epoch.

fairseq prefetches batches in a daemon thread (``data/iterators.py``, ``BackgroundConsumer``). When
training ends before the epoch does (``--max-update``, the usual case), that thread is still
loading batches as the interpreter shuts down; if it is inside torch's C++ code at that moment,
finalization unwinds it through C++ frames that do not allow it and the process aborts ("terminate
called without an active exception", exit status 134) after training has finished and saved, so a
launcher reports a failed run. The replacement ``run`` stops between batches once the process is
exiting, and an ``atexit`` hook (which runs before daemon threads are killed) stops every consumer,
emptying its queue so that a blocked ``put`` returns, and waits for it.
"""

import atexit
import queue
import threading
import time
import weakref

import torch
from fairseq.data import iterators

from .patch import replaces

_exiting = threading.Event()
_consumers = weakref.WeakSet()


@replaces(iterators.BackgroundConsumer, "run",
          "(self)",
          "end a run that stops mid-epoch without aborting the process at exit")
def run(self):
    """fairseq's ``BackgroundConsumer.run``, stopping between batches once the process exits."""
    _consumers.add(self)
    # set_device to avoid creation of GPU0 context when using pin_memory
    if self.cuda_device is not None:
        torch.cuda.set_device(self.cuda_device)
    try:
        for item in self._source:
            if _exiting.is_set():
                return
            self._queue.put(item)
            # Stop if we reached the maximum length
            self.count += 1
            if self._max_len is not None and self.count >= self._max_len:
                break
        # Signal the consumer we are done.
        self._queue.put(iterators._sentinel)
    except Exception as e:
        self._queue.put(e)


def stop_consumers(timeout: float = 60.0) -> None:
    _exiting.set()
    deadline = time.monotonic() + timeout
    for consumer in list(_consumers):
        while consumer.is_alive() and time.monotonic() < deadline:
            try:
                while True:
                    consumer._queue.get_nowait()
            except queue.Empty:
                pass
            consumer.join(0.05)


atexit.register(stop_consumers)

PATCHES = [run]
