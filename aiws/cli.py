"""The ``aiws`` command line. Configuration is read here, once, and passed down."""
from __future__ import annotations

import argparse
import logging
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from aiws import __version__
from aiws.config import Config, load_config
from aiws.errors import AiwsError, ConfigError
from aiws.logsetup import CONSOLE, setup_logging
from pacs_bridge.errors import BridgeError

LOGGER = logging.getLogger("aiws")

#: The configuration ``aiws serve`` (and every command) uses when no --config is given; documented, and the
#: example a site copies to start its own file.
DEFAULT_CONFIG = Path(__file__).with_name("defaults.toml")

#: Modules that add sub-commands: each has ``register(subparsers)``; handlers get (args, config).
_COMMAND_MODULES = ("aiws.cli_admin", "aiws.cli_ops", "aiws.cli_plugin", "aiws.cli_train", "aiws.cli_users", "aiws.cli_model")


def _setup_logging(verbose: bool) -> None:
    setup_logging(logging.DEBUG if verbose else logging.INFO)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="aiws", description="AIWS imaging-AI workstation service")
    parser.add_argument("--config", type=Path, default=None, help="TOML configuration file (default: aiws/defaults.toml)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    parser.add_argument("--version", action="version", version=f"aiws {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)
    import importlib

    for name in _COMMAND_MODULES:
        importlib.import_module(name).register(sub)
    return parser


#: Commands whose own --config is not the service configuration.
_OWN_CONFIG_COMMANDS = ("train",)


def _own_config_command(tokens: list[str]) -> int:
    """Index of the command word when it is one of ``_OWN_CONFIG_COMMANDS``, else len(tokens)."""
    i = 0
    while i < len(tokens):
        if tokens[i] == "--config":
            i += 2
        elif tokens[i].startswith("-"):
            i += 1
        else:
            return i if tokens[i] in _OWN_CONFIG_COMMANDS else len(tokens)
    return len(tokens)


def main(argv: Sequence[str] | None = None) -> int:
    # --config and -v are accepted anywhere on the line (`aiws serve --config FILE`), except after a
    # command that has its own --config (`aiws train TASK --config RUN.toml`): there they go before it.
    pre = argparse.ArgumentParser(add_help=False)
    pre.add_argument("--config", type=Path, default=None)
    pre.add_argument("-v", "--verbose", action="store_true")
    tokens = list(sys.argv[1:] if argv is None else argv)
    split = _own_config_command(tokens)
    common, rest = pre.parse_known_args(tokens[:split])
    rest += tokens[split:]
    args = build_parser().parse_args(rest)
    args.config = common.config or args.config
    args.verbose = common.verbose or args.verbose
    _setup_logging(args.verbose)
    try:
        config = load_config(args.config or DEFAULT_CONFIG, os.environ)
    except ConfigError as exc:
        CONSOLE.error(f"aiws: invalid configuration:\n{exc}")
        return 2
    handler: Callable[[argparse.Namespace, Config], int] = args.handler
    try:
        return handler(args, config)
    except (AiwsError, BridgeError) as exc:
        CONSOLE.error(f"aiws: {exc}")
        return 1


if __name__ == "__main__":
    sys.exit(main())
