"""What tests change on a running ``aiws serve`` through its API (local AE, sources, destinations, routing rules),
read before a test and put back after it, so that one service can serve a whole test module (starting one costs
seconds) while each test starts from the configuration file's state.

Usage (a module-scoped service, a function-scoped fixture around it)::

    @pytest.fixture
    def aiws(shared: AiwsProcess) -> Iterator[AiwsProcess]:
        was = network_state(shared)
        yield shared
        restore_network(shared, was)

The rules' version is not put back (the store only counts up): a test that checks versions reads the current one
first (``rules_version``) and expects the next.
"""
from __future__ import annotations

from typing import Any

from peers import AiwsProcess


def rules_version(proc: AiwsProcess) -> int:
    return int(proc.api("/api/routes")["version"])


def network_state(proc: AiwsProcess) -> dict[str, Any]:
    """The local AE, sources, destinations (by name) and routing rules (without their version) of *proc*."""
    ae = proc.api("/api/config/ae")
    return {"ae": {"ae_title": ae["ae_title"], "require_known_source": ae["require_known_source"]},
            "sources": proc.api("/api/config/sources"),
            "destinations": sorted(proc.api("/api/config/destinations"), key=lambda d: str(d["name"])),
            "routes": proc.api("/api/routes")["routes"]}


def restore_network(proc: AiwsProcess, was: dict[str, Any]) -> None:
    """Put back *was* (from :func:`network_state`): the rules first, as they may name a destination a test added.

    Raises:
        httpx.HTTPStatusError: the service refused a change. RuntimeError: the state read back differs.
    """
    api = proc.api
    state = network_state(proc)
    if state == was:
        return
    if state["routes"] != was["routes"]:
        api("/api/routes", "PUT", json={"version": rules_version(proc), "routes": was["routes"]})
    now = {d["name"]: d for d in state["destinations"]}
    for name in now.keys() - {d["name"] for d in was["destinations"]}:
        api(f"/api/config/destinations/{name}", "DELETE")
    for dest in was["destinations"]:
        if dest["name"] not in now:
            api("/api/config/destinations", "POST", json=dest)
        elif now[dest["name"]] != dest:
            api(f"/api/config/destinations/{dest['name']}", "PUT", json=dest)
    if state["sources"] != was["sources"]:
        for title in {s["ae_title"] for s in state["sources"]}:
            api(f"/api/config/sources/{title}", "DELETE")
        for source in was["sources"]:
            api("/api/config/sources", "POST", json=source)
    if state["ae"] != was["ae"]:
        api("/api/config/ae", "PUT", json=was["ae"])
    if network_state(proc) != was:
        raise RuntimeError(f"the service's configuration was not put back: {network_state(proc)} != {was}")
