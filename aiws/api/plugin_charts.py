"""Inline SVG charts of plugin results for the console, drawn on the server (no JavaScript, no CDN).

- :func:`gantt_svg`: an operating-room plan, one row per room-day, one bar per scheduled case from its
  start to its end minute, the session's capacity marked; every bar carries ``data-case``, ``data-room``,
  ``data-day``, ``data-start`` and ``data-end`` so that a test (or a screen reader's title) reads it back.
- :func:`forecast_svg`: an ED arrival history and the forecast after it, mean line with its 80 % and
  95 % prediction intervals as bands.

Every text drawn is escaped; the result is :class:`markupsafe.Markup` for Jinja2 templates.
"""
from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from markupsafe import Markup, escape

#: Colours per surgeon (colour-blind-safe Okabe-Ito set), cycled.
PALETTE = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#999999")

GANTT_WIDTH = 960
GANTT_LABEL = 130
GANTT_ROW = 36
GANTT_TOP = 28

PLOT_WIDTH = 960
PLOT_HEIGHT = 360
PLOT_MARGIN = (20, 20, 40, 56)  # top, right, bottom, left
#: Hours of history drawn before the forecast (the plot would be unreadable with a whole year).
HISTORY_HOURS_SHOWN = 14 * 24


def _attr(value: Any) -> str:
    return str(escape(str(value)))


def _nice_step(span: float, target: int) -> float:
    raw = span / max(1, target)
    magnitude = 10 ** math.floor(math.log10(raw)) if raw > 0 else 1
    for factor in (1, 2, 5, 10):
        if raw <= factor * magnitude:
            return factor * magnitude
    return 10 * magnitude


def gantt_svg(assignments: Sequence[Mapping[str, Any]], room_days: Sequence[Mapping[str, Any]]) -> Markup:
    """The schedule of *assignments* (``case, room, day, start_minute, end_minute, surgeon``) over the rows
    of *room_days* (``room, day, capacity_minutes``), in day then room order."""
    rows = sorted({(int(rd["day"]), str(rd["room"])) for rd in room_days}
                  | {(int(a["day"]), str(a["room"])) for a in assignments})
    capacity = {(int(rd["day"]), str(rd["room"])): int(rd["capacity_minutes"]) for rd in room_days}
    end = max([int(a["end_minute"]) for a in assignments] + list(capacity.values()) + [60])
    span = int(math.ceil(end / 60.0) * 60)
    scale = (GANTT_WIDTH - GANTT_LABEL - 10) / span
    height = GANTT_TOP + GANTT_ROW * len(rows) + 10
    surgeons = sorted({str(a["surgeon"]) for a in assignments})
    colour = {s: PALETTE[i % len(PALETTE)] for i, s in enumerate(surgeons)}
    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="gantt" role="img" width="{GANTT_WIDTH}" '
           f'height="{height}" viewBox="0 0 {GANTT_WIDTH} {height}" font-family="sans-serif" font-size="12">',
           "<title>Operating-room plan: one row per room and day, one bar per case</title>"]
    step = 60 if span <= 12 * 60 else 120
    for minute in range(0, span + 1, step):
        x = GANTT_LABEL + minute * scale
        out.append(f'<line class="tick" x1="{x:.1f}" y1="{GANTT_TOP - 6}" x2="{x:.1f}" y2="{height - 10}" '
                   f'stroke="#ddd"/><text x="{x:.1f}" y="{GANTT_TOP - 10}" text-anchor="middle" fill="#555">'
                   f"{minute // 60} h</text>")
    for i, (day, room) in enumerate(rows):
        y = GANTT_TOP + i * GANTT_ROW
        cap = capacity.get((day, room))
        out.append(f'<g class="room-row" data-room="{_attr(room)}" data-day="{day}">')
        out.append(f'<text x="6" y="{y + GANTT_ROW / 2 + 4:.1f}" fill="#222">{escape(room)} · day {day}</text>')
        if cap is not None:
            out.append(f'<rect class="session" x="{GANTT_LABEL}" y="{y + 3}" width="{cap * scale:.1f}" '
                       f'height="{GANTT_ROW - 6}" fill="#f2f5f9" stroke="#c7d0db"/>')
        bars = sorted((a for a in assignments if (int(a["day"]), str(a["room"])) == (day, room)),
                      key=lambda a: int(a["start_minute"]))
        for a in bars:
            start, stop = int(a["start_minute"]), int(a["end_minute"])
            x, w = GANTT_LABEL + start * scale, max(1.0, (stop - start) * scale)
            over = cap is not None and stop > cap
            tip = (f"{a['case']}: minute {start}–{stop} ({stop - start} min), {a['surgeon']}"
                   + (f", {a.get('duration_source')}" if a.get("duration_source") else "")
                   + (" — runs over the session" if over else ""))
            out.append(f'<rect class="case{" overtime" if over else ""}" data-case="{_attr(a["case"])}" '
                       f'data-room="{_attr(room)}" data-day="{day}" data-start="{start}" data-end="{stop}" '
                       f'x="{x:.1f}" y="{y + 7}" width="{w:.1f}" height="{GANTT_ROW - 14}" rx="3" '
                       f'fill="{colour[str(a["surgeon"])]}" stroke="{"#b00020" if over else "#333"}" '
                       f'stroke-width="{2 if over else 0.5}"><title>{escape(tip)}</title></rect>')
            if w > 7 * len(str(a["case"])):
                out.append(f'<text x="{x + 4:.1f}" y="{y + GANTT_ROW / 2 + 4:.1f}" fill="#fff" '
                           f'pointer-events="none">{escape(a["case"])}</text>')
        if cap is not None:
            xc = GANTT_LABEL + cap * scale
            out.append(f'<line class="capacity" x1="{xc:.1f}" y1="{y + 1}" x2="{xc:.1f}" y2="{y + GANTT_ROW - 1}" '
                       f'stroke="#b00020" stroke-dasharray="4 3"/>')
        out.append("</g>")
    out.append("</svg>")
    return Markup("".join(out))


def surgeon_colours(assignments: Sequence[Mapping[str, Any]]) -> list[tuple[str, str]]:
    """(surgeon, colour) pairs of the Gantt chart's legend."""
    surgeons = sorted({str(a["surgeon"]) for a in assignments})
    return [(s, PALETTE[i % len(PALETTE)]) for i, s in enumerate(surgeons)]


def _parse_hour(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value))


def _points(xs: Sequence[float], ys: Sequence[float]) -> str:
    return " ".join(f"{x:.1f},{y:.1f}" for x, y in zip(xs, ys, strict=True))


def forecast_svg(history: Sequence[tuple[datetime, float]], hourly: Sequence[Mapping[str, Any]]) -> Markup:
    """Arrivals per hour: the last :data:`HISTORY_HOURS_SHOWN` hours of *history*, then the forecast's mean
    (line) with its 80 % and 95 % intervals (bands) from *hourly* (``hour, mean, lo80, hi80, lo95, hi95``)."""
    shown = list(history)[-HISTORY_HOURS_SHOWN:]
    fc = [(_parse_hour(h["hour"]), h) for h in hourly]
    times = [t for t, _ in shown] + [t for t, _ in fc]
    if not times:
        return Markup("")
    t0, t1 = min(times), max(times)
    top, right, bottom, left = PLOT_MARGIN
    inner_w, inner_h = PLOT_WIDTH - left - right, PLOT_HEIGHT - top - bottom
    total_s = max(3600.0, (t1 - t0).total_seconds())
    y_max = max([v for _, v in shown] + [float(h["hi95"]) for _, h in fc] + [1.0]) * 1.05
    step = _nice_step(y_max, 5)

    def x(t: datetime) -> float:
        return left + (t - t0).total_seconds() / total_s * inner_w

    def y(v: float) -> float:
        return top + inner_h - v / y_max * inner_h

    out = [f'<svg xmlns="http://www.w3.org/2000/svg" class="forecast" role="img" width="{PLOT_WIDTH}" '
           f'height="{PLOT_HEIGHT}" viewBox="0 0 {PLOT_WIDTH} {PLOT_HEIGHT}" font-family="sans-serif" font-size="12">',
           "<title>Arrivals per hour: history, forecast mean, 80 % and 95 % prediction intervals</title>"]
    v = 0.0
    while v <= y_max:
        out.append(f'<line x1="{left}" y1="{y(v):.1f}" x2="{PLOT_WIDTH - right}" y2="{y(v):.1f}" stroke="#eee"/>'
                   f'<text x="{left - 6}" y="{y(v) + 4:.1f}" text-anchor="end" fill="#555">{v:g}</text>')
        v += step
    day = datetime(t0.year, t0.month, t0.day, tzinfo=t0.tzinfo) + timedelta(days=1)
    every = max(1, math.ceil(total_s / 86400 / 12))
    n = 0
    while day <= t1:
        if n % every == 0:
            out.append(f'<line x1="{x(day):.1f}" y1="{top}" x2="{x(day):.1f}" y2="{top + inner_h}" stroke="#eee"/>'
                       f'<text x="{x(day):.1f}" y="{PLOT_HEIGHT - bottom + 16}" text-anchor="middle" fill="#555">'
                       f"{day:%d %b}</text>")
        day += timedelta(days=1)
        n += 1
    if fc:
        xs = [x(t) for t, _ in fc]
        for band, lo, hi, fill in (("band95", "lo95", "hi95", "#cfe3f3"), ("band80", "lo80", "hi80", "#9cc7e8")):
            upper = [y(float(h[hi])) for _, h in fc]
            lower = [y(float(h[lo])) for _, h in fc]
            out.append(f'<polygon class="{band}" fill="{fill}" stroke="none" '
                       f'points="{_points(xs + xs[::-1], upper + lower[::-1])}"/>')
        out.append(f'<polyline class="forecast-mean" data-points="{len(fc)}" fill="none" stroke="#0b4f8a" '
                   f'stroke-width="1.5" points="{_points(xs, [y(float(h["mean"])) for _, h in fc])}"/>')
        xf = x(fc[0][0])
        out.append(f'<line class="origin" x1="{xf:.1f}" y1="{top}" x2="{xf:.1f}" y2="{top + inner_h}" '
                   f'stroke="#444" stroke-dasharray="4 3"/>')
    if shown:
        out.append(f'<polyline class="history" data-points="{len(shown)}" fill="none" stroke="#333" '
                   f'stroke-width="1" points="{_points([x(t) for t, _ in shown], [y(c) for _, c in shown])}"/>')
    out.append(f'<rect x="{left}" y="{top}" width="{inner_w}" height="{inner_h}" fill="none" stroke="#999"/>')
    out.append(f'<text x="14" y="{top + inner_h / 2:.1f}" transform="rotate(-90 14 {top + inner_h / 2:.1f})" '
               'text-anchor="middle" fill="#333">arrivals per hour</text>')
    out.append("</svg>")
    return Markup("".join(out))
