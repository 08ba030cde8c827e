"""Administration commands: serve, ae, routes, echo, send, status."""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from aiws.config import Config, RouteConfig
from aiws.errors import ConfigError, NotFound
from aiws.ledger import Ledger
from aiws.logsetup import CONSOLE
from aiws.netconfig import NetworkStore
from aiws.netsettings import sender_settings
from pacs_bridge.scrub import scrub_text
from pacs_bridge.sender import echo, send_files

LOGGER = logging.getLogger(__name__)
_ACTOR = "cli"


def _network(config: Config) -> tuple[Ledger, NetworkStore]:
    ledger = Ledger.of_config(config)
    network = NetworkStore(ledger)
    network.seed(config)
    return ledger, network


def describe_active(network: dict[str, Any], routes: Sequence[RouteConfig], port: int) -> str:
    """One line naming the accepted sources, the routes and the destinations (AE titles and hosts only);
    *network* is the live network document (:meth:`aiws.netconfig.NetworkStore.doc`)."""
    if network["require_known_source"]:
        sources = ", ".join(f"{s['ae_title']}@{s.get('host') or 'any host'}" for s in network["sources"]) or "none"
    else:
        sources = "any calling AE title"
    rules = [f"{r.pipeline} [{' '.join(f'{k}={v}' for k, v in r.match.items()) or 'every series'}] -> "
             f"{','.join(r.send_to) or 'nowhere'}" for r in routes]
    dests = ", ".join(f"{d['name']}={d['ae_title']}@{d['host']}:{d['port']}" for d in network["destinations"])
    return (f"active: AE {network['ae_title']} on port {port}; sources {sources}; "
            f"routes {'; '.join(rules) or 'none'}; destinations {dests or 'none'}")


def cmd_serve(args: argparse.Namespace, config: Config) -> int:
    """Exit 2 with one line naming the problem when the service cannot start (see :mod:`aiws.startup`)."""
    from aiws.service import Service
    from aiws.startup import StartupError

    try:
        service = Service(config)
        # pynetdicom receives each data set into a temporary file: on the spool's disk (not a RAM /tmp),
        # and a file a crash leaves there is removed at the next start (Spool._clean_tmp)
        tempfile.tempdir = str(service.spool.tmp_dir)
        LOGGER.info("%s", describe_active(service.network.doc(), service.routes.current().routes, config.dicom.port))
        service.serve_forever()
    except (StartupError, ConfigError) as exc:
        CONSOLE.error(f"aiws: cannot start: {exc}")
        return 2
    return 0


def cmd_ae(args: argparse.Namespace, config: Config) -> int:
    ledger, network = _network(config)
    if args.ae_command == "list":
        doc = network.doc()
        CONSOLE.info(f"local AE: {doc['ae_title']} (port {config.dicom.port}, known sources only: "
                     f"{doc['require_known_source']})")
        for s in doc["sources"]:
            CONSOLE.info(f"source       {s['ae_title']:<16} {s.get('host') or 'any host'}")
        for d in doc["destinations"]:
            CONSOLE.info(f"destination  {d['name']:<16} {d['ae_title']}@{d['host']}:{d['port']}"
                         f"{' tls' if d['tls'] else ''}"
                         f"{' NOT-verified' if d['tls'] and not d.get('verify', True) else ''}"
                         f"{' pdf' if d['pdf_report'] else ''}")
    elif args.ae_command == "add" and args.kind == "source":
        network.add_source({"ae_title": args.ae_title, "host": args.host, "any_host": args.any_host}, _ACTOR)
        CONSOLE.info(f"source {args.ae_title} added")
    elif args.ae_command == "add":
        if args.host is None or args.port is None or args.name is None:
            CONSOLE.info("aiws ae add destination needs NAME (--name), --host and --port")
            return 2
        network.add_destination({"name": args.name, "ae_title": args.ae_title, "host": args.host,
                                 "port": args.port, "tls": args.tls, "verify": not args.no_verify,
                                 "pdf_report": args.pdf_report}, _ACTOR)
        CONSOLE.info(f"destination {args.name} added")
    elif args.ae_command == "remove" and args.kind == "source":
        network.remove_source(args.ae_title, _ACTOR)
        CONSOLE.info(f"source {args.ae_title} removed")
    elif args.ae_command == "remove":
        from aiws.routestore import RouteStore

        routes = RouteStore(ledger, config, network)
        routes.seed(config)
        routes.refuse_if_named(args.ae_title)
        network.remove_destination(args.ae_title, _ACTOR)
        CONSOLE.info(f"destination {args.ae_title} removed")
    elif args.ae_command == "set-local":
        network.set_ae(args.ae_title, None, _ACTOR)
        CONSOLE.info(f"local AE title is now {args.ae_title}")
    return 0


def _destination(network: NetworkStore, name: str) -> Any:
    dest = network.destinations().get(name)
    if dest is None:
        raise NotFound(f"destination {name!r} is not configured (see 'aiws ae list')")
    return dest


def cmd_echo(args: argparse.Namespace, config: Config) -> int:
    ledger, network = _network(config)
    dest = _destination(network, args.destination)
    ms = echo(dest, sender_settings(config, network.policy().ae_title))
    ledger.audit(_ACTOR, "echo", {"destination": args.destination, "ms": round(ms, 1)})
    CONSOLE.info(f"C-ECHO {dest.ae_title}@{dest.host}:{dest.port}: success in {ms:.1f} ms")
    return 0


def cmd_send(args: argparse.Namespace, config: Config) -> int:
    ledger, network = _network(config)
    dest = _destination(network, args.destination)
    paths: list[Path] = []
    for p in args.paths:
        paths.extend(sorted(f for f in p.rglob("*") if f.is_file()) if p.is_dir() else [p])
    report = send_files(dest, paths, sender_settings(config, network.policy().ae_title))
    ledger.audit(_ACTOR, "manual send", {"destination": args.destination, "files": report.sent})
    CONSOLE.info(f"sent {report.sent} instances to {args.destination} in {report.seconds:.2f} s")
    return 0


def service_state(config: Config) -> dict[str, Any]:
    """Whether a service runs on the configured data directory (its lock) and whether its API answers."""
    import httpx

    from aiws.startup import running_pid

    pid = running_pid(config.storage.data_dir)
    url = f"http://{config.http.host}:{config.http.port}/health"
    if pid is None:
        return {"running": False}
    try:
        answers = httpx.get(url, timeout=2.0).status_code == 200
    except httpx.HTTPError:
        answers = False
    return {"running": True, "pid": pid, "api": url.removesuffix("/health"), "api_answers": answers}


def cmd_status(args: argparse.Namespace, config: Config) -> int:
    ledger, network = _network(config)
    counts = ledger.counts()
    state = service_state(config)
    if args.json:
        CONSOLE.info(json.dumps({"service": state, **counts}, indent=2))
        return 0
    if state["running"]:
        CONSOLE.info(f"service: running (pid {state['pid']}); API {state['api']} "
                     f"{'answers' if state['api_answers'] else 'does not answer'}")
    else:
        CONSOLE.info("service: not running")
    CONSOLE.info(f"AIWS data in {config.storage.data_dir.resolve()}  (local AE {network.policy().ae_title})")
    for table, states in counts.items():
        CONSOLE.info(f"  {table:<10} " + ", ".join(f"{k}: {v}" for k, v in sorted(states.items())))
    now = time.time()
    for s in ledger.list_sends("dead", limit=10):
        CONSOLE.info(f"  dead send {s.id} → {s.destination} ({s.attempts} tries): "
                     f"{scrub_text(s.last_error.splitlines()[0] if s.last_error else '', max_chars=100)}")
    for j in ledger.list_jobs("failed", limit=10):
        CONSOLE.info(f"  failed job {j.id} {j.pipeline} study {j.study_uid}: "
                     f"{scrub_text(j.error.splitlines()[0] if j.error else '', max_chars=100)}")
    for st in ledger.list_studies("receiving", limit=10):
        CONSOLE.info(f"  receiving study {st.study_uid}: {st.n_instances} instances, "
                     f"quiet {now - st.last_received_at:.0f} s")
    return 0


def cmd_routes(args: argparse.Namespace, config: Config) -> int:
    """The live routing rules: show them as TOML, replace them from a TOML file, or test them on a DICOM file."""
    from aiws.routestore import RouteStore, explain_routes, file_headers, routes_from_toml, routes_to_toml, shown_value

    ledger, network = _network(config)
    store = RouteStore(ledger, config, network)
    store.seed(config)
    rules = store.current()
    if args.routes_command == "show":
        origin = "as in the configuration file" if rules.from_file else "changed since the configuration file was loaded"
        CONSOLE.info(f"# live routing rules, version {rules.version} ({origin})\n{routes_to_toml(rules.routes)}")
    elif args.routes_command == "set":
        raw = routes_from_toml(args.file.read_text(encoding="utf-8"))
        rules = store.replace(raw, rules.version if args.version is None else args.version, _ACTOR)
        CONSOLE.info(f"routing rules version {rules.version}: {len(rules.routes)} routes, applied to the next study")
    else:
        with args.file.open("rb") as fp:
            explained = explain_routes(rules.compiled, file_headers(fp))
        for series in explained:
            decided = ", ".join(f"#{v.index} {v.pipeline} -> {','.join(v.send_to) or 'nowhere'}" for v in series.deciding)
            CONSOLE.info(f"series {series.series_uid}: {decided or 'no route matched (kept, listed as unrouted)'}")
            for v in series.verdicts:
                outcome = "decides" if v.decides else f"matched, #{v.shadowed_by} came first" if v.matched else "no match"
                CONSOLE.info(f"  #{v.index} {v.pipeline}: {outcome}")
                for c in v.conditions:
                    value = shown_value(c.keyword, c.value, show_values=True)
                    CONSOLE.info(f"    {'ok ' if c.matched else 'NO '} {c.keyword} {c.rule}: {c.reason}"
                                 + (f" (value {value!r})" if value is not None else ""))
    return 0


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("serve", help="run the service (SCP, HTTP API, workers)")
    p.set_defaults(handler=cmd_serve)

    p = sub.add_parser("ae", help="local AE title, allowed sources, destinations")
    ae = p.add_subparsers(dest="ae_command", required=True)
    ae.add_parser("list", help="show the live network configuration").set_defaults(handler=cmd_ae)
    add = ae.add_parser("add", help="add a source or a destination")
    add.add_argument("kind", choices=["source", "destination"])
    add.add_argument("ae_title")
    add.add_argument("--name", help="destination name (used in routes' send_to)")
    add.add_argument("--host")
    add.add_argument("--port", type=int)
    add.add_argument("--any-host", action="store_true", help="source: accept its AE title from every address")
    add.add_argument("--tls", action="store_true")
    add.add_argument("--no-verify", action="store_true",
                     help="destination with --tls: do not verify its certificate (verify = false)")
    add.add_argument("--pdf-report", action="store_true", help="also send the PDF report")
    add.set_defaults(handler=cmd_ae)
    rm = ae.add_parser("remove", help="remove a source (by AE title) or a destination (by name)")
    rm.add_argument("kind", choices=["source", "destination"])
    rm.add_argument("ae_title", metavar="AE_TITLE_OR_NAME")
    rm.set_defaults(handler=cmd_ae)
    loc = ae.add_parser("set-local", help="change our own AE title")
    loc.add_argument("ae_title")
    loc.set_defaults(handler=cmd_ae)

    p = sub.add_parser("routes", help="the live routing rules: show, set from a TOML file, test on a DICOM file")
    routes = p.add_subparsers(dest="routes_command", required=True)
    routes.add_parser("show", help="the live rules as [[routes]] TOML").set_defaults(handler=cmd_routes)
    rset = routes.add_parser("set", help="replace the live rules by the [[routes]] of FILE (validated, audited)")
    rset.add_argument("file", type=Path)
    rset.add_argument("--version", type=int, help="refuse unless the live rules are still at this version")
    rset.set_defaults(handler=cmd_routes)
    rtest = routes.add_parser("test", help="which route decides for the series of a DICOM file, and why")
    rtest.add_argument("file", type=Path)
    rtest.set_defaults(handler=cmd_routes)

    p = sub.add_parser("echo", help="C-ECHO a destination")
    p.add_argument("destination")
    p.set_defaults(handler=cmd_echo)

    p = sub.add_parser("send", help="C-STORE files or folders to a destination")
    p.add_argument("destination")
    p.add_argument("paths", nargs="+", type=Path)
    p.set_defaults(handler=cmd_send)

    p = sub.add_parser("status", help="what is receiving, pending, failed or dead-lettered")
    p.add_argument("--json", action="store_true")
    p.set_defaults(handler=cmd_status)


