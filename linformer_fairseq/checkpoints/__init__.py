"""Checkpoint integrity, in one place: fairseq's save and load paths come through here.

  checksums.py     the ``.sha256`` beside each checkpoint; written whole in a crash-safe order
  integrity.py     what is wrong with a checkpoint file (missing, empty, truncated, not ours, corrupt)
  storage.py       save, copy and load, as ``compat/checkpoint_io`` routes fairseq's calls
  safe_loading.py  the plain data classes torch's weights-only unpickler may build from a checkpoint
  repair.py        the newest intact checkpoint of a run, and replacing a broken last/best with it
"""
