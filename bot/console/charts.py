"""Charts drawn as SVG on the server: the console needs no script and no internet access, and a
chart's numbers are in the page (each point has a <title>, shown on hover and read by tests)."""
from __future__ import annotations

from collections.abc import Sequence

from markupsafe import Markup, escape

PALETTE = ("#2f7ed8", "#e4572e", "#17a589", "#f3a712", "#8e44ad", "#7f8c8d", "#c0392b", "#16a085")


def _fmt(value: float) -> str:
    return f"{value:.0%}" if 0 < value < 1 and not float(value).is_integer() else f"{value:,.0f}"


def _nice_max(value: float, *, percent: bool = False) -> float:
    """The top of the axis. A rate's is 100%; a count's is a whole number that halves into a
    whole number (its middle line is a count too: 1 tops at 2, 7 at 8, 23 at 30)."""
    if percent:
        return 1.0 if value <= 1 else float(-(-value // 1))
    if value <= 0:
        return 2.0
    step = 10 ** (len(str(int(value))) - 1)
    top = -(-value // step) * step
    return float(top + 1 if top % 2 else top)


def line_chart(labels: Sequence[str], series: Sequence[tuple[str, Sequence[float | None]]], *,
               title: str, width: int = 640, height: int = 200, percent: bool = False) -> Markup:
    """One line per series over ``labels`` (days); None leaves a gap."""
    left, right, top, bottom = 48, 12, 28, 28
    plot_w, plot_h = width - left - right, height - top - bottom
    peak = _nice_max(max((v for _, values in series for v in values if v is not None), default=0), percent=percent)
    n = max(len(labels), 1)

    def x(i: int) -> float:
        return left + (plot_w * i / (n - 1) if n > 1 else plot_w / 2)

    def y(v: float) -> float:
        return top + plot_h - plot_h * v / peak

    def label(v: float) -> str:
        return f"{v:.0%}" if percent else f"{v:,.0f}"  # a count, never a share

    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" aria-label="{escape(title)}">',
             f'<text x="{left}" y="16" class="chart-title">{escape(title)}</text>']
    for frac in (0, 0.5, 1):
        yy = y(peak * frac)
        parts.append(f'<line x1="{left}" x2="{width - right}" y1="{yy:.1f}" y2="{yy:.1f}" class="grid"/>'
                     f'<text x="{left - 6}" y="{yy + 4:.1f}" class="axis" text-anchor="end">'
                     f'{label(peak * frac)}</text>')
    for i in sorted({0, (n - 1) // 2, n - 1}):
        if i < len(labels):
            parts.append(f'<text x="{x(i):.1f}" y="{height - 8}" class="axis" text-anchor="middle">'
                         f'{escape(labels[i][5:])}</text>')
    for k, (name, values) in enumerate(series):
        color = PALETTE[k % len(PALETTE)]
        runs: list[list[str]] = [[]]
        for i, v in enumerate(values):
            if v is None:
                runs.append([])
            else:
                runs[-1].append(f"{x(i):.1f},{y(v):.1f}")
        for run in runs:
            if len(run) > 1:
                parts.append(f'<polyline points="{" ".join(run)}" fill="none" stroke="{color}" stroke-width="2"/>')
        for i, v in enumerate(values):
            if v is not None:
                parts.append(f'<circle cx="{x(i):.1f}" cy="{y(v):.1f}" r="2.5" fill="{color}">'
                             f'<title>{escape(name)} {escape(labels[i])}: {label(v)}</title></circle>')
    legend = "".join(f'<span class="legend"><i style="background:{PALETTE[k % len(PALETTE)]}"></i>{escape(name)}</span>'
                     for k, (name, _) in enumerate(series))
    return Markup("".join(parts) + "</svg>" + (f'<div class="legends">{legend}</div>' if len(series) > 1 else ""))


def bar_chart(items: Sequence[tuple[str, float]], *, title: str, width: int = 640) -> Markup:
    """Horizontal bars, one per item, with its number at the end."""
    row, left = 22, 120
    height = 28 + row * max(len(items), 1)
    peak = max((v for _, v in items), default=0) or 1
    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height}" width="100%" aria-label="{escape(title)}">',
             f'<text x="0" y="16" class="chart-title">{escape(title)}</text>']
    for i, (name, value) in enumerate(items):
        yy = 26 + i * row
        w = (width - left - 70) * value / peak
        parts.append(f'<text x="{left - 6}" y="{yy + 14}" class="axis" text-anchor="end">{escape(name[:12])}</text>'
                     f'<rect x="{left}" y="{yy + 2}" width="{w:.1f}" height="{row - 6}" fill="{PALETTE[0]}">'
                     f'<title>{escape(name)}: {_fmt(value)}</title></rect>'
                     f'<text x="{left + w + 6:.1f}" y="{yy + 14}" class="axis">{_fmt(value)}</text>')
    if not items:
        parts.append(f'<text x="{left}" y="40" class="axis">暂无数据</text>')
    return Markup("".join(parts) + "</svg>")


def sparkline(values: Sequence[float], *, width: int = 120, height: int = 24) -> Markup:
    """A small line of daily values (a table cell's trend)."""
    if not values:
        return Markup("")
    peak = max(values) or 1
    step = width / max(len(values) - 1, 1)
    points = " ".join(f"{i * step:.1f},{height - 2 - (height - 4) * v / peak:.1f}" for i, v in enumerate(values))
    return Markup(f'<svg class="spark" viewBox="0 0 {width} {height}" width="{width}" height="{height}">'
                  f'<title>{escape(" ".join(_fmt(v) for v in values))}</title>'
                  f'<polyline points="{points}" fill="none" stroke="{PALETTE[0]}" stroke-width="1.5"/></svg>')
