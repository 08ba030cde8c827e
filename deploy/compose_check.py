"""Check a Compose file as ``docker compose config`` would, without Docker (no engine runs on every machine).

    python deploy/compose_check.py deploy/compose.yaml [--env-file deploy/.env]

Variables are interpolated as Compose does (``${X}``, ``${X:-default}``, ``${X:?error}``, ``$$``; the
values from ``--env-file`` and then the environment), the result is validated against the Compose
Specification JSON schema (the copy ``check-jsonschema`` ships), and then what the schema cannot
see: a service without image or build, a build context without its Dockerfile or target stage,
``depends_on`` naming no service, a bind mount whose source is missing, an undeclared volume or
network, a port that is not ``[ip:]host:container``, a fixed address outside its network. Prints one
line per problem; exit status 1 when there is one. tests/test_deploy.py runs it on deploy/compose.yaml.
"""
from __future__ import annotations

import argparse
import importlib.resources
import ipaddress
import json
import os
import re
import sys
from pathlib import Path
from typing import Any

import jsonschema
import yaml

_VAR = re.compile(r"\$\$|\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")
_PORT = re.compile(r"((\d{1,3}\.){3}\d{1,3}:)?(\d+:)?\d+(/(tcp|udp))?")
_STAGE = re.compile(r"^\s*FROM\s+\S+\s+AS\s+(\S+)\s*$", re.IGNORECASE | re.MULTILINE)


def interpolate(value: Any, env: dict[str, str]) -> Any:
    """Compose's variable interpolation over a parsed document.

    Raises:
        ValueError: a required variable (``${X:?error}``) is unset or empty, with its error text.
    """
    if isinstance(value, dict):
        return {k: interpolate(v, env) for k, v in value.items()}
    if isinstance(value, list):
        return [interpolate(v, env) for v in value]
    if not isinstance(value, str):
        return value

    def sub(m: re.Match[str]) -> str:
        if m.group(0) == "$$":
            return "$"
        name, op, arg = m.group(1), m.group(2), m.group(3)
        have = env.get(name)
        unset = have is None or (op is not None and op.startswith(":") and have == "")
        if op in (":?", "?") and unset:
            raise ValueError(f"required variable {name} is missing a value: {arg}")
        return arg if op in (":-", "-") and unset else (have or "")
    return _VAR.sub(sub, value)


def load_compose(path: Path, env: dict[str, str]) -> dict[str, Any]:
    """The Compose file at *path*, parsed and interpolated with *env*.

    Raises:
        ValueError: a required variable is missing; yaml.YAMLError: not YAML.
    """
    return dict(interpolate(yaml.safe_load(path.read_text(encoding="utf-8")), env))


def schema_errors(doc: dict[str, Any]) -> list[str]:
    """Where *doc* breaks the Compose Specification schema: ``path: message`` per error."""
    text = importlib.resources.files("check_jsonschema.builtin_schemas.vendor").joinpath("compose-spec.json")
    schema = json.loads(text.read_text(encoding="utf-8"))
    validator = jsonschema.validators.validator_for(schema)(schema)
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def _build_problems(name: str, build: Any, base: Path) -> list[str]:
    if not isinstance(build, dict):
        return [] if (base / str(build)).is_dir() else [f"{name}: build context {build} does not exist"]
    dockerfile = base / build.get("context", ".") / build.get("dockerfile", "Dockerfile")
    if not dockerfile.is_file():
        return [f"{name}: build: no {dockerfile}"]
    target = build.get("target")
    if target and target not in _STAGE.findall(dockerfile.read_text(encoding="utf-8")):
        return [f"{name}: build.target {target} is not a stage of {dockerfile.name}"]
    return []


def _network_problems(name: str, service: dict[str, Any], doc: dict[str, Any]) -> list[str]:
    problems = []
    declared = doc.get("networks") or {}
    nets = service.get("networks", [])
    for net, opts in (nets.items() if isinstance(nets, dict) else ((n, None) for n in nets)):
        if net not in declared:
            problems.append(f"{name}: network {net} is not declared")
        elif opts and "ipv4_address" in opts:
            config = ((declared[net] or {}).get("ipam") or {}).get("config", [])
            subnets = [ipaddress.ip_network(c["subnet"]) for c in config if "subnet" in c]
            if not any(ipaddress.ip_address(opts["ipv4_address"]) in s for s in subnets):
                problems.append(f"{name}: {opts['ipv4_address']} is outside network {net}")
    return problems


def compose_problems(doc: dict[str, Any], base: Path) -> list[str]:
    """What ``docker compose config`` or ``up`` refuses beyond the schema; *base*: the file's folder."""
    problems = []
    services = doc.get("services") or {}
    for name, svc in services.items():
        if "image" not in svc and "build" not in svc:
            problems.append(f"{name}: neither image nor build")
        if "build" in svc:
            problems += _build_problems(name, svc["build"], base)
        problems += [f"{name}: depends_on {dep}: no such service" for dep in svc.get("depends_on", {})
                     if dep not in services]
        for volume in svc.get("volumes", []):
            source = str(volume).split(":")[0]
            if source.startswith((".", "/")) and not (base / source).exists():
                problems.append(f"{name}: bind mount {source} does not exist")
            elif not source.startswith((".", "/")) and source not in (doc.get("volumes") or {}):
                problems.append(f"{name}: volume {source} is not declared")
        problems += [f"{name}: port {p!r} is not [ip:]host:container" for p in svc.get("ports", [])
                     if not _PORT.fullmatch(str(p))]
        problems += _network_problems(name, svc, doc)
    return problems


def _env_file(path: Path | None) -> dict[str, str]:
    if path is None:
        return {}
    lines = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines()]
    return dict(ln.split("=", 1) for ln in lines if "=" in ln and not ln.startswith("#"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("file", type=Path)
    parser.add_argument("--env-file", type=Path, default=None)
    args = parser.parse_args(argv)
    try:
        doc = load_compose(args.file, {**_env_file(args.env_file), **os.environ})
    except (ValueError, yaml.YAMLError) as exc:
        sys.stderr.write(f"{args.file}: {exc}\n")
        return 1
    problems = schema_errors(doc) + compose_problems(doc, args.file.resolve().parent)
    for line in problems:
        sys.stderr.write(f"{args.file}: {line}\n")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
