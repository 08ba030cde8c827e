"""Plugin commands: ``aiws plugin list`` and ``aiws plugin run NAME --input FILE [--output FILE]``.

The input is flat JSON, a FHIR R4 Bundle (JSON) or CSV (by the ``.csv`` suffix or ``--format``);
``-`` reads standard input. The result is printed as JSON (or written to ``--output``). Every run
is recorded in the ledger's audit (plugin, version, input hash, status, time; no identifiers).
Exit status: 0 done, 2 invalid input or unknown plugin, 1 other plugin error.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from aiws.config import Config
from aiws.ledger import Ledger
from aiws.logsetup import CONSOLE
from plugins.errors import InvalidInput, PluginError, UnknownPlugin
from plugins.registry import Registry
from plugins.runner import audit_detail, run_plugin

_ACTOR = "cli"
AUDIT_ACTION = "plugin.run"


def cmd_list(args: argparse.Namespace, config: Config) -> int:
    registry = Registry()
    for name in registry.names():
        try:
            plugin = registry.get(name)
        except PluginError as exc:
            CONSOLE.info(f"{name:<12} (cannot load: {exc})")
            continue
        CONSOLE.info(f"{plugin.name:<12} {plugin.version:<8} {','.join(sorted(plugin.formats)):<14} {plugin.summary}")
        CONSOLE.info(f"{'':<12} disclaimer: {plugin.disclaimer}")
        CONSOLE.info(f"{'':<12} provenance: {plugin.provenance().text()}")
    return 0


def _read(path: Path) -> bytes:
    return sys.stdin.buffer.read() if str(path) == "-" else path.read_bytes()


def cmd_run(args: argparse.Namespace, config: Config) -> int:
    try:
        plugin = Registry().get(args.name)
    except UnknownPlugin as exc:
        CONSOLE.error(f"aiws plugin run: {exc}")
        return 2
    try:
        data = _read(args.input)
    except OSError as exc:
        CONSOLE.error(f"aiws plugin run: cannot read {args.input} ({exc.strerror})")
        return 2
    hint = args.format or args.input.suffix.lstrip(".") or None
    ledger = Ledger.of_config(config)
    try:
        result = run_plugin(plugin, data, hint)
    except InvalidInput as exc:
        ledger.audit(_ACTOR, AUDIT_ACTION, audit_detail(plugin.name, plugin.version, data, "invalid",
                                                        problems=len(exc.problems)))
        CONSOLE.error(f"aiws plugin run {plugin.name}: invalid input")
        for problem in exc.problems:
            CONSOLE.error(f"  {problem}")
        return 2
    ledger.audit(_ACTOR, AUDIT_ACTION, audit_detail(plugin.name, plugin.version, data, "ok",
                                                    format=result.input_format, records=len(result.outputs),
                                                    seconds=round(result.seconds, 4)))
    text = json.dumps(result.body(), indent=2, ensure_ascii=False)
    if args.output:
        args.output.write_text(text + "\n", encoding="utf-8")
        CONSOLE.info(f"{plugin.name} {plugin.version}: {len(result.outputs)} result(s) written to {args.output}")
        CONSOLE.info(f"disclaimer: {plugin.disclaimer}")
        CONSOLE.info(f"provenance: {plugin.provenance().text()}")
    else:
        CONSOLE.info(text)
    return 0


def register(subparsers: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    parser = subparsers.add_parser("plugin", help="tabular plugins: sepsis, pharmacy, ed_flow, or_planning")
    sub = parser.add_subparsers(dest="plugin_command", required=True)
    ls = sub.add_parser("list", help="list the registered plugins")
    ls.set_defaults(handler=cmd_list)
    run = sub.add_parser("run", help="run a plugin on a JSON, FHIR Bundle or CSV file")
    run.add_argument("name", help="plugin name (see 'aiws plugin list')")
    run.add_argument("--input", type=Path, required=True, help="input file ('-' for standard input)")
    run.add_argument("--output", type=Path, default=None, help="write the JSON result here instead of printing it")
    run.add_argument("--format", choices=("json", "csv"), default=None, help="input format (default: by suffix)")
    run.set_defaults(handler=cmd_run)
