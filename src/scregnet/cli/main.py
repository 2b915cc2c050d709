"""``scregnet`` entry point: builds the subcommand parsers, configures logging, maps errors to exits.

Every subcommand module in :data:`SUBCOMMANDS` exposes ``HELP`` (one line), ``add_arguments(parser)``
and ``main(args) -> int``; heavy imports stay inside ``main`` so ``--help`` is instant.

While a subcommand runs, SIGTERM and SIGHUP raise :class:`Terminated` and SIGINT raises
``KeyboardInterrupt`` in the main thread, so every ``with`` block on the way out cleans up (atomic
writes delete their temporary files and folders, child processes are stopped) before the command
exits with ``128 + signal number`` and one line on stderr.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from types import FrameType, ModuleType
from typing import Any, NoReturn

from scregnet import __version__
from scregnet.errors import EXIT_OUT_OF_MEMORY, InputError, first_line, signal_name
from scregnet.io.outputs import os_problem

# subcommand -> module; listed in pipeline order
SUBCOMMANDS: dict[str, str] = {
    "simulate": "scregnet.cli.simulate",
    "fragments": "scregnet.cli.fragments",
    "count": "scregnet.cli.count",
    "cluster": "scregnet.cli.cluster",
    "tracks": "scregnet.cli.tracks",
    "peaks": "scregnet.cli.peaks",
    "impute": "scregnet.cli.impute",
    "tfbind": "scregnet.cli.tfbind",
    "grn": "scregnet.cli.grn",
    "report": "scregnet.cli.report",
    "evaluate": "scregnet.cli.evaluate",
    "run": "scregnet.cli.run",
}

log = logging.getLogger("scregnet")


def subcommands() -> dict[str, ModuleType]:
    """The subcommand modules, by name."""
    return {name: importlib.import_module(module) for name, module in SUBCOMMANDS.items()}


class Terminated(BaseException):
    """Raised in the main thread when the process receives SIGTERM or SIGHUP.

    A ``BaseException``, like ``KeyboardInterrupt``, so that ``except Exception`` does not swallow it.
    """

    def __init__(self, signum: int) -> None:
        self.signum = signum
        super().__init__(signal_name(signum))


#: the signals a command stops on; SIGINT raises KeyboardInterrupt, the others Terminated
STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


@contextlib.contextmanager
def signals_as_exceptions() -> Iterator[None]:
    """Turn SIGTERM, SIGHUP and SIGINT into exceptions for the block (main thread only).

    The first signal raises; later ones are ignored, so the cleanup that the first one starts is
    not cut short (``kill -9`` still ends the process at once). A signal that was ignored when the
    block began (``nohup``) stays ignored. Earlier handlers come back when the block exits.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    owner = os.getpid()
    received: list[int] = []

    def handler(signum: int, frame: FrameType | None) -> None:
        if os.getpid() != owner:  # a forked worker: end the default way
            signal.signal(signum, signal.SIG_DFL)
            os.kill(os.getpid(), signum)
            return
        if received:
            return
        received.append(signum)
        if signum == signal.SIGINT:
            raise KeyboardInterrupt
        raise Terminated(signum)

    previous: dict[signal.Signals, object] = {}
    for sig in STOP_SIGNALS:
        current = signal.getsignal(sig)
        if current == signal.SIG_IGN:
            continue
        previous[sig] = current
        signal.signal(sig, handler)
    try:
        yield
    finally:
        for sig, old in previous.items():
            signal.signal(sig, old)  # type: ignore[arg-type]  # getsignal's result, as it was


def common_options() -> argparse.ArgumentParser:
    """Options every subcommand takes: ``--seed``, ``--threads``, ``--quiet``, ``--debug``."""
    parent = argparse.ArgumentParser(add_help=False)
    group = parent.add_argument_group("common options")
    # no argparse default, so that `scregnet run` can tell `--seed 0` from no --seed (main sets 0)
    group.add_argument(
        "--seed", type=int, default=argparse.SUPPRESS, help="random seed (default: 0)"
    )
    group.add_argument("--threads", type=int, default=1, help="worker threads/processes")
    verbosity = group.add_mutually_exclusive_group()
    verbosity.add_argument("--quiet", action="store_true", help="only warnings and errors")
    verbosity.add_argument("--debug", action="store_true", help="debug logging and full tracebacks")
    return parent


def nested_common_options(parser: argparse.ArgumentParser) -> None:
    """Accept the common options after a nested subcommand too (``tfbind train --seed 1``).

    Defaults are suppressed so that values given before the nested subcommand
    (``tfbind --seed 1 train``) are not overwritten.
    """
    group = parser.add_argument_group("common options (also accepted before the subcommand)")
    group.add_argument(
        "--seed", type=int, default=argparse.SUPPRESS, help="random seed (default: 0)"
    )
    group.add_argument(
        "--threads", type=int, default=argparse.SUPPRESS, help="CPU threads (default: 1)"
    )
    group.add_argument("--quiet", action="store_true", default=argparse.SUPPRESS)
    group.add_argument("--debug", action="store_true", default=argparse.SUPPRESS)


class HelpFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Appends an option's default to its help where it has one: not for a default of None,
    not for a required option, and not where the help already says ``(default: ...)``."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        if action.default is None or action.required or "(default" in text:
            return text
        if isinstance(action.default, (list, tuple)):  # written as the option takes it
            shown = ",".join(str(v) for v in action.default) or "none"
            return f"{text} (default: {shown})"
        return super()._get_help_string(action)


class OneLineParser(argparse.ArgumentParser):
    """Usage errors as one line (``scregnet count: error: ...``), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="scregnet",
        description="Single-cell ATAC (+ scRNA) to counts, imputed expression, TF binding and a GRN.",
    )
    parser.add_argument("--version", action="version", version=f"scregnet {__version__}")
    subparsers: Any = parser.add_subparsers(dest="command", metavar="<subcommand>")
    parent = common_options()
    for name, module in subcommands().items():
        sub = subparsers.add_parser(
            name,
            help=module.HELP,
            description=module.HELP,
            parents=[parent],
            formatter_class=HelpFormatter,
        )
        module.add_arguments(sub)
        sub.set_defaults(_module=module)
    return parser


def configure_logging(*, quiet: bool = False, debug: bool = False) -> None:
    level = logging.WARNING if quiet else logging.DEBUG if debug else logging.INFO
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(
        logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s", "%H:%M:%S")
    )
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.WARNING)
    logging.getLogger("scregnet").setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Parse ``argv``, run the subcommand, return the exit code (0 only when all outputs are complete)."""
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help(sys.stderr)
        return 2
    args.seed_given = hasattr(args, "seed")
    if not args.seed_given:
        args.seed = 0
    if args.seed < 0:
        parser.error(f"--seed must be >= 0, got {args.seed}")
    if args.threads < 1:
        parser.error(f"--threads must be >= 1, got {args.threads}")
    configure_logging(quiet=args.quiet, debug=args.debug)
    start = time.perf_counter()
    try:
        with signals_as_exceptions():
            code = int(args._module.main(args) or 0)
    except InputError as exc:
        print(f"scregnet {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(
            f"scregnet {args.command}: interrupted (SIGINT), temporary files removed",
            file=sys.stderr,
        )
        return 128 + signal.SIGINT
    except Terminated as exc:
        print(
            f"scregnet {args.command}: stopped by {exc}, temporary files removed", file=sys.stderr
        )
        return 128 + exc.signum
    except MemoryError as exc:  # the host's memory: a retry with more may succeed
        if args.debug:
            raise
        print(
            f"scregnet {args.command}: error: out of memory ({first_line(exc)}); "
            f"give it more memory (exit {EXIT_OUT_OF_MEMORY}, as the kernel's OOM killer leaves)",
            file=sys.stderr,
        )
        return EXIT_OUT_OF_MEMORY
    except Exception as exc:  # a bug, not a user error: one line unless --debug
        if args.debug:
            raise
        if _gpu_out_of_memory(exc):
            print(
                f"scregnet {args.command}: error: out of GPU memory ({first_line(exc)}); rerun "
                "on a GPU with more memory, with a smaller --batch-size where the subcommand "
                "takes one, or with --device cpu",
                file=sys.stderr,
            )
            return 1
        problem = os_problem(exc)
        if problem is not None:  # disk full, permission denied, ... on a named file
            print(f"scregnet {args.command}: error: {problem}", file=sys.stderr)
            return 1
        first = first_line(exc, default="")
        print(
            f"scregnet {args.command}: internal error: {type(exc).__name__}: {first} (rerun with --debug for the traceback)",
            file=sys.stderr,
        )
        return 1
    log.debug("%s finished in %.1f s", args.command, time.perf_counter() - start)
    return code


def _gpu_out_of_memory(exc: BaseException) -> bool:
    """Whether ``exc`` is PyTorch's out-of-memory error of a device (CUDA, MPS); torch is only
    looked at when the subcommand imported it."""
    torch = sys.modules.get("torch")
    return torch is not None and isinstance(exc, torch.OutOfMemoryError)


def run() -> None:
    """Console-script entry point."""
    sys.exit(main())


if __name__ == "__main__":
    run()
