"""Model versions on the command line: ``aiws model list``, ``aiws model promote NAME N``, ``aiws model rollback NAME``.

The same path as the API and the console (:mod:`aiws.model_versions`): the version written into the model's
``config.pbtxt`` and an audit row with the old and new version; a running service follows at its next job.
"""
from __future__ import annotations

import argparse
import getpass

from aiws import model_versions
from aiws.config import Config
from aiws.errors import ConfigError, Conflict, NotFound
from aiws.ledger import Ledger
from aiws.logsetup import CONSOLE


def _actor() -> str:
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):  # no user name for this uid (a container)
        return "cli"


def _ledger(config: Config) -> Ledger:
    return Ledger.of_config(config)  # [ledger] url (PostgreSQL) or SQLite in data_dir


def cmd_list(args: argparse.Namespace, config: Config) -> int:
    """Per pipeline its models: the active version (*), the others, the policy."""
    ledger = _ledger(config)
    for pipeline, models in model_versions.overview(config, ledger):
        CONSOLE.info(f"{pipeline}:")
        for m in models:
            if m.error:
                CONSOLE.info(f"  {m.name}: {m.error}")
                continue
            versions = " ".join(f"{v.version}*" if v.active else str(v.version) for v in m.versions)
            back = f", rollback to {m.rollback_to}" if m.rollback_to is not None else ""
            CONSOLE.info(f"  {m.name}: active {m.active} (policy {m.policy}{back}); versions {versions}")
    return 0


def _change(args: argparse.Namespace, config: Config, version: int | None) -> int:
    ledger = _ledger(config)
    try:
        if version is None:
            outcome = model_versions.rollback(config, ledger, _actor(), args.name)
        else:
            outcome = model_versions.promote(config, ledger, _actor(), args.name, version)
    except (NotFound, Conflict, ConfigError) as exc:
        CONSOLE.error(f"aiws model: {exc}")
        return 1
    c = outcome.change
    CONSOLE.info(f"{c.model}: active version {c.old} -> {c.new} (audit row {outcome.audit_id})"
                 + (f"; Triton: {outcome.triton}" if outcome.triton else ""))
    return 0


def cmd_promote(args: argparse.Namespace, config: Config) -> int:
    """0: promoted; 1: refused (unknown model or version, ONNX not matching config.pbtxt), the reason printed."""
    return _change(args, config, args.version)


def cmd_rollback(args: argparse.Namespace, config: Config) -> int:
    """0: rolled back; 1: nothing to roll back to, or the earlier version is refused."""
    return _change(args, config, None)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("model", help="model versions: list, promote, roll back")
    model = p.add_subparsers(dest="model_command", required=True)
    model.add_parser("list", help="models per pipeline, versions, the active one").set_defaults(handler=cmd_list)
    promote = model.add_parser("promote", help="make version N the active version of NAME")
    promote.add_argument("name")
    promote.add_argument("version", type=int)
    promote.set_defaults(handler=cmd_promote)
    rollback = model.add_parser("rollback", help="back to the version active before the last promotion")
    rollback.add_argument("name")
    rollback.set_defaults(handler=cmd_rollback)
