"""The `neuralab` command: a thin layer that parses, calls the library and prints.

Each module in this package that defines ``register(subparsers)`` adds its commands;
heavy imports (torch, matplotlib) happen inside the command functions so that
`neuralab --help` stays instant.
"""

from __future__ import annotations

import argparse
import importlib
import pkgutil
import sys

from neuralab import __version__
from neuralab.errors import NeuralabError


class Parser(argparse.ArgumentParser):
    """Usage errors in one line that names the option, with exit status 2."""

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message} (see `{self.prog} --help`)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(
        prog="neuralab",
        description="Hands-on deep learning with CNNs and LSTMs: mechanics, models, training, forecasting.",
    )
    parser.add_argument("--version", action="version", version=f"neuralab {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for info in sorted(pkgutil.iter_modules(__path__), key=lambda m: m.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        if hasattr(module, "register"):
            module.register(sub)
    return parser


def flag(parameter: str) -> str:
    """The command-line flag of a library parameter."""
    return "--" + parameter.replace("_", "-")


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args) or 0
    except NeuralabError as e:
        print(f"neuralab: error: {e.render(flag)}", file=sys.stderr)
        return 2
    except KeyboardInterrupt as e:
        print(f"neuralab: {e or 'interrupted'}", file=sys.stderr)
        return 130
    finally:
        torch = sys.modules.get("torch")
        if torch is not None and torch.distributed.is_available() and torch.distributed.is_initialized():
            torch.distributed.destroy_process_group()
