"""fairseq's command-line ``--bf16`` refused, with the reason and what to use instead.

fairseq 0.12's ``options.parse_args_and_arch`` ends with ``if args.bf16: args.tpu = True``: on its
command line (``fairseq-train``, ``fairseq-validate``, ...) ``--bf16`` also switches on ``--tpu``,
and the trainer then asks torch_xla for a TPU instead of using the GPU. The Hydra key
``common.bf16`` has no such coupling (``fairseq-hydra-train``, and the launchers'
``PRECISION=bf16``). So a command line that asks for ``--bf16`` without ``--tpu`` is refused in one
line instead of failing later inside the trainer; ``--bf16 --tpu`` (a real TPU run) is left alone.
"""

import sys

from fairseq import options

from ..errors import OptionError
from .patch import replaces

MESSAGE = ("--bf16 on fairseq's command line also switches on --tpu (fairseq 0.12, options.parse_args_and_arch), "
           "which trains on a TPU through torch_xla, not on the GPU; for bf16 on a GPU (or CPU) use the Hydra key "
           "common.bf16=true (fairseq-hydra-train, or PRECISION=bf16 with linformer-pretrain / linformer-finetune), "
           "or --fp16 on this command line")


@replaces(options, "parse_args_and_arch",
          "(parser: argparse.ArgumentParser, input_args: List[str] = None, parse_known: bool = False, "
    "suppress_defaults: bool = False, modify_parser: Optional[Callable[[argparse.ArgumentParser], NoneType]] = None)",
          "refuse --bf16, which fairseq's command line turns into --tpu")
def parse_args_and_arch(parser, input_args=None, parse_known=False, suppress_defaults=False, modify_parser=None):
    parsed = parse_args_and_arch.call_original(parser, input_args, parse_known, suppress_defaults, modify_parser)
    args = parsed[0] if parse_known else parsed
    given = sys.argv[1:] if input_args is None else list(input_args)
    if getattr(args, "bf16", False) and "--tpu" not in given:
        raise OptionError(MESSAGE)
    return parsed


PATCHES = [parse_args_and_arch]
