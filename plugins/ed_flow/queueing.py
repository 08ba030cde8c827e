"""M/M/c (Erlang C) queue: probability of waiting, mean queue length and wait, and the smallest
number of servers meeting a target mean wait.

With a = λ/μ and ρ = a/c: P0 = [Σ_{k<c} a^k/k! + a^c/(c!(1−ρ))]⁻¹; P(wait) = a^c/(c!(1−ρ)) · P0;
Lq = P(wait) · ρ/(1−ρ); Wq = Lq/λ. Computed through the Erlang B recursion
B(k) = a·B(k−1)/(k + a·B(k−1)), C = B/(1 − ρ(1 − B)), which equals the formula above and stays
exact for hundreds of servers. The queue is stable only when ρ < 1.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

from plugins.errors import SolverError


@dataclass(frozen=True)
class ErlangC:
    stable: bool
    utilization: float
    p_wait: float
    lq: float | None
    wq_minutes: float | None


def erlang_c(arrival_rate_per_hour: float, service_rate_per_hour: float, servers: int) -> ErlangC:
    """Erlang C measures. ``lq``/``wq_minutes`` are None when the queue is unstable (ρ >= 1)."""
    lam, mu, c = arrival_rate_per_hour, service_rate_per_hour, servers
    if lam <= 0 or mu <= 0 or c < 1:
        raise SolverError(f"queue: arrival and service rates must be > 0 and servers >= 1 (got {lam}, {mu}, {c})")
    a = lam / mu
    rho = a / c
    if rho >= 1:
        return ErlangC(stable=False, utilization=rho, p_wait=1.0, lq=None, wq_minutes=None)
    b = 1.0
    for k in range(1, c + 1):
        b = a * b / (k + a * b)
    p_wait = b / (1 - rho * (1 - b))
    lq = p_wait * rho / (1 - rho)
    return ErlangC(stable=True, utilization=rho, p_wait=p_wait, lq=lq, wq_minutes=lq / lam * 60.0)


def erlang_c_direct(arrival_rate_per_hour: float, service_rate_per_hour: float, servers: int) -> float:
    """P(wait) by the textbook formula (for cross-checking small c; overflows for large c)."""
    a = arrival_rate_per_hour / service_rate_per_hour
    c = servers
    rho = a / c
    top = a**c / (math.factorial(c) * (1 - rho))
    p0 = 1.0 / (sum(a**k / math.factorial(k) for k in range(c)) + top)
    return top * p0


def min_servers(arrival_rate_per_hour: float, service_rate_per_hour: float, target_wait_minutes: float,
                max_servers: int = 10_000) -> int:
    """Smallest c with a stable queue and Wq <= target. Raises :class:`SolverError` past ``max_servers``."""
    if target_wait_minutes < 0:
        raise SolverError(f"queue: target_wait_minutes must be >= 0 (got {target_wait_minutes})")
    c = max(1, math.floor(arrival_rate_per_hour / service_rate_per_hour) + 1)
    while c <= max_servers:
        res = erlang_c(arrival_rate_per_hour, service_rate_per_hour, c)
        if res.stable and res.wq_minutes is not None and res.wq_minutes <= target_wait_minutes:
            return c
        c += 1
    raise SolverError(f"queue: no server count up to {max_servers} meets a wait of {target_wait_minutes} min")
