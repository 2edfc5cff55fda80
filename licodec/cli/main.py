"""The ``licodec`` command. Each subcommand module has add_arguments(parser) and run(args).

Exit codes: 0 success, 2 usage error, 3 bad input (unreadable image, corrupt file,
missing or mismatched model, existing output), 1 internal error. Errors are one line
on stderr; ``--debug`` shows the traceback.
"""
from __future__ import annotations

import argparse
import sys
import traceback

from ..errors import LicodecError
from . import coding_cmds, demo_cmd, eval_cmds, export_cmd, models_cmd, train_cmd

EXIT_OK = 0
EXIT_INTERNAL = 1
EXIT_USAGE = 2
EXIT_BAD_INPUT = 3

COMMANDS = {
    "encode": (coding_cmds.add_encode, coding_cmds.run_encode, "compress an image into a .lic file"),
    "decode": (coding_cmds.add_decode, coding_cmds.run_decode, "decode a .lic file into an image"),
    "info": (coding_cmds.add_info, coding_cmds.run_info, "show what a .lic file holds"),
    "models": (models_cmd.add_arguments, models_cmd.run, "list the installed models"),
    "demo": (demo_cmd.add_arguments, demo_cmd.run, "encode and decode the built-in sample photo"),
    "train": (train_cmd.add_arguments, train_cmd.run, "train a model on a folder of images"),
    "export": (export_cmd.add_arguments, export_cmd.run, "turn a training checkpoint into a model file"),
    "eval": (eval_cmds.add_eval, eval_cmds.run_eval, "rate-distortion curves of codecs over a folder"),
    "compare": (eval_cmds.add_compare, eval_cmds.run_compare, "codecs side by side at one size"),
}


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows an option's default unless its help states it already, or it has none."""

    def _get_help_string(self, action):
        text = action.help or ""
        if "(default" in text or action.default in (None, False, argparse.SUPPRESS):
            return text
        return super()._get_help_string(action)


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # usage errors: one line, exit 2
        self.print_usage(sys.stderr)
        print(f"licodec: error: {message}", file=sys.stderr)
        raise SystemExit(EXIT_USAGE)


def build_parser() -> argparse.ArgumentParser:
    from .. import __version__
    parser = _Parser(prog="licodec", description="A learned image codec.")
    parser.add_argument("--version", action="version", version=f"licodec {__version__}")
    parser.add_argument("--debug", action="store_true", help="show tracebacks on errors")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, (add, run, help_) in COMMANDS.items():
        p = sub.add_parser(name, help=help_, description=help_,
                           formatter_class=_HelpFormatter)
        p.add_argument("--debug", action="store_true", default=argparse.SUPPRESS,
                       help="show tracebacks on errors")
        add(p)
        p.set_defaults(run=run)
    return parser


def _show_warning(message, category, filename, lineno, file=None, line=None):
    print(f"licodec: warning: {message}", file=sys.stderr)


def main(argv: list[str] | None = None) -> int:
    import warnings
    warnings.showwarning = _show_warning  # one line, like the errors
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return EXIT_USAGE
    try:
        return int(args.run(args) or 0)
    except LicodecError as exc:
        return _fail(args, exc, EXIT_BAD_INPUT)
    except (FileExistsError, FileNotFoundError, IsADirectoryError, PermissionError) as exc:
        return _fail(args, exc, EXIT_BAD_INPUT)
    except MemoryError:
        print("licodec: not enough memory for this image", file=sys.stderr)
        return EXIT_BAD_INPUT
    except KeyboardInterrupt:
        print("licodec: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (licodec models | head): not an error of ours
        import os
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:  # a bug: say so in one line, details with --debug
        return _fail(args, exc, EXIT_INTERNAL, internal=True)


def _fail(args, exc: BaseException, code: int, internal: bool = False) -> int:
    if getattr(args, "debug", False):
        traceback.print_exc()
    if isinstance(exc, OSError) and exc.filename:  # raised by the OS: name the file
        msg = f"{exc.filename}: {exc.strerror or exc}"
    else:
        msg = str(exc)
    if internal:
        msg = f"internal error: {type(exc).__name__}: {msg} (run with --debug for details)"
    print(f"licodec: {msg}", file=sys.stderr)
    return code
