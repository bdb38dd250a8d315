"""The one exception type that data preparation raises for bad input.

Everything the user can fix (a missing corpus, a malformed row, a non-UTF-8 byte, a mismatched
shard dictionary) is reported as a :class:`DataPrepError` (one of the project's
:class:`~linformer_fairseq.errors.LinformerError`) whose message names the file, line or flag at
fault; the command-line entry points print it without a traceback.
"""

from linformer_fairseq.errors import LinformerError, print_error


class DataPrepError(LinformerError):
    """Bad input or an inconsistent output directory; the message says where and what was expected."""


def run_command(prepare, describe) -> int:
    """A data preparation command line: ``prepare()`` with the project's log format, its result
    described on stdout, a DataPrepError as one line ``error: ...`` on stderr and exit status 2."""
    from linformer_fairseq.launch.console import setup_logging

    setup_logging()
    try:
        result = prepare()
    except LinformerError as error:
        print_error(error)
        return 2
    print(describe(result))
    return 0
