"""The one exception type that data preparation raises for bad input.

Everything the user can fix (a missing corpus, a malformed row, a non-UTF-8 byte, a mismatched
shard dictionary) is reported as a :class:`DataPrepError` whose message names the file, line or
flag at fault; the command-line entry points print it without a traceback.
"""


class DataPrepError(Exception):
    """Bad input or an inconsistent output directory; the message says where and what was expected."""
