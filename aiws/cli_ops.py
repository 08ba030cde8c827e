"""Operations commands: ``aiws audit verify`` and ``aiws config check FILE``."""
from __future__ import annotations

import argparse
import os
from pathlib import Path

from aiws.config import Config, load_config
from aiws.errors import ConfigError
from aiws.ledger import Ledger
from aiws.logsetup import CONSOLE
from aiws.pipelines import check_routes, settings_errors
from aiws.startup import StartupError, check_tls

_ACTOR = "cli"


def cmd_audit_verify(args: argparse.Namespace, config: Config) -> int:
    """0: the chain is intact; 1: it is broken (the first bad row is named); 2: no ledger there."""
    path = config.storage.data_dir / "aiws.db"
    if config.ledger.url is None and not path.is_file():
        CONSOLE.error(f"aiws: no ledger at {path}")
        return 2
    ledger = Ledger.of_config(config)
    report = ledger.verify_audit()
    ledger.audit(_ACTOR, "audit verified", {"ok": report.ok, "rows": report.n_rows, "bad_row": report.bad_id})
    if report.ok:
        CONSOLE.info(f"audit trail intact: {report.n_rows} rows, chain verified")
        return 0
    CONSOLE.error(f"audit trail BROKEN at row {report.bad_id}: {report.reason}")
    return 1


def cmd_config_check(args: argparse.Namespace, config: Config) -> int:
    """Validate FILE (with the AIWS_… environment overrides, as ``aiws serve`` would) without starting."""
    try:
        checked = load_config(args.file, os.environ)
        errors = settings_errors(checked)  # every [pipelines.*] problem at once
        if not errors:
            check_routes(checked)
        check_tls(checked)
    except (ConfigError, StartupError) as exc:
        CONSOLE.error(f"{args.file}: invalid\n{exc}")
        return 2
    if errors:
        CONSOLE.error(f"{args.file}: invalid\n" + "\n".join(errors))
        return 2
    CONSOLE.info(f"{args.file}: valid ({len(checked.routes)} routes, {len(checked.dicom.destinations)} "
                 f"destinations, pipelines {', '.join(sorted({r.pipeline for r in checked.routes})) or 'none'})")
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("audit", help="the audit trail")
    audit = p.add_subparsers(dest="audit_command", required=True)
    audit.add_parser("verify", help="recompute the hash chain; exit 1 naming the first bad row").set_defaults(
        handler=cmd_audit_verify)

    p = sub.add_parser("config", help="configuration files")
    cfg = p.add_subparsers(dest="config_command", required=True)
    check = cfg.add_parser("check", help="validate a configuration file without starting (exit 2 if invalid)")
    check.add_argument("file", type=Path)
    check.set_defaults(handler=cmd_config_check)
