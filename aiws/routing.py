"""Routing: each completed study is matched, series by series, against the configured routes."""
from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiws.config import RouteConfig
from aiws.ledger import NewJob
from imaging.rules import MatchRules

LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True)
class Route:
    pipeline: str
    send_to: tuple[str, ...]
    rules: MatchRules

    @classmethod
    def of(cls, cfg: RouteConfig) -> Route:
        return cls(cfg.pipeline, tuple(cfg.send_to), cfg.rules())


def route_study(routes: Sequence[Route], series_headers: Mapping[str, Any]) -> list[NewJob]:
    """Jobs for a study: per series and pipeline, the first matching route decides.

    *series_headers* maps SeriesInstanceUID to one representative header
    (a pydicom Dataset). The series a pipeline got are grouped into one job per
    (pipeline, destinations), in series order. No match → no job (the study is
    kept and listed as unrouted).
    """
    chosen: dict[tuple[str, tuple[str, ...]], list[str]] = {}
    for series_uid, header in series_headers.items():
        decided: set[str] = set()
        for route in routes:
            if route.pipeline in decided or not route.rules.matches(header):
                continue
            decided.add(route.pipeline)
            chosen.setdefault((route.pipeline, route.send_to), []).append(series_uid)
    return [NewJob(pipeline, tuple(series), send_to) for (pipeline, send_to), series in chosen.items()]
