"""Pen drawings: SVG path data -> polylines -> RDP -> stroke-3 <-> stroke-5, scaling, and SVG rendering.

Formats (sketch-rnn, magenta ``sketch_rnn/utils.py``):

- **polylines**: a list of (n_i, 2) arrays of absolute points, one per pen-down stroke, y axis down.
- **stroke-3** (N, 3): ``(dx, dy, p)``, offsets from the previous point (the first row is the first point
  itself, measured from the origin), ``p = 1`` when the pen lifts *after* this point.
- **stroke-5** (N, 5): ``(dx, dy, p1, p2, p3)`` one-hot pen state: p1 = pen stays down, p2 = pen lifts,
  p3 = the drawing has ended. The model's sequence is ``S0 = (0, 0, 1, 0, 0)``, the N rows, then ``END =
  (0, 0, 0, 0, 1)``; padding repeats END.

Offsets are divided by one scale factor (the std of all training dx and dy together, no mean subtracted,
as magenta's ``calculate_normalizing_scale_factor``); it is stored in the checkpoint.

Pure functions on numpy arrays: no I/O, torch or randomness. The SVG path parser is hand-written (about
60 lines, covering M L H V C S Q T Z, absolute and relative); elliptical arcs are refused with CodecError.
"""

from __future__ import annotations

import re
from collections.abc import Sequence

import numpy as np

from performance_rnn.errors import CodecError

S0 = np.array([0.0, 0.0, 1.0, 0.0, 0.0], dtype=np.float32)
END = np.array([0.0, 0.0, 0.0, 0.0, 1.0], dtype=np.float32)

_TOKEN = re.compile(r"[MmLlHhVvCcSsQqTtZzAa]|[-+]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")
_ARITY = {"M": 2, "L": 2, "H": 1, "V": 1, "C": 6, "S": 4, "Q": 4, "T": 2, "Z": 0}


def _bezier(points: np.ndarray, n: int) -> np.ndarray:
    """Points (k, 2) of a Bezier curve of degree k-1 -> n samples excluding t=0 (n, 2)."""
    t = np.linspace(0.0, 1.0, n + 1)[1:, None]
    if len(points) == 3:
        p0, p1, p2 = points
        return (1 - t) ** 2 * p0 + 2 * (1 - t) * t * p1 + t**2 * p2
    p0, p1, p2, p3 = points
    return (1 - t) ** 3 * p0 + 3 * (1 - t) ** 2 * t * p1 + 3 * (1 - t) * t**2 * p2 + t**3 * p3


def parse_svg_path(d: str, samples_per_curve: int = 8) -> list[np.ndarray]:
    """SVG path data -> polylines (one per subpath), curves sampled at ``samples_per_curve`` points."""
    tokens = _TOKEN.findall(d)
    lines: list[list[np.ndarray]] = []
    pos = np.zeros(2)
    start = np.zeros(2)
    ctrl: np.ndarray | None = None  # last control point, for the S/T reflection
    family = ""  # "C" after C/S, "Q" after Q/T: S reflects a previous C/S control, T a previous Q/T
    cmd, i = "", 0
    while i < len(tokens):
        if tokens[i].isalpha():
            cmd, i = tokens[i], i + 1
            if cmd in "Aa":
                raise CodecError("SVG elliptical arcs (A/a) are not supported")
        elif not cmd:
            raise CodecError(f"SVG path data must start with a command, got {tokens[i]!r}")
        up, rel = cmd.upper(), cmd.islower()
        n = _ARITY[up]
        try:
            args = np.array([float(x) for x in tokens[i:i + n]])
        except ValueError as exc:
            raise CodecError(f"SVG path {up}: expected {n} numbers at token {i}") from exc
        if len(args) < n:
            raise CodecError(f"SVG path {up}: expected {n} numbers, got {len(args)}")
        i += n
        base = pos if rel else np.zeros(2)
        if up == "M":
            pos = base + args
            start = pos
            lines.append([pos])
            cmd = "l" if rel else "L"  # further pairs after a moveto are linetos
            ctrl, family = None, ""
            continue
        if not lines:
            raise CodecError("SVG path draws before its first moveto")
        if up == "Z":
            new = [start]
            pos, ctrl = start, None
        elif up in "LHV":
            if up == "H":
                args = np.array([args[0] + (pos[0] if rel else 0.0), pos[1]])
            elif up == "V":
                args = np.array([pos[0], args[0] + (pos[1] if rel else 0.0)])
            else:
                args = base + args
            new, pos, ctrl = [args], args, None
        else:
            pts = args.reshape(-1, 2) + base  # control points then the end point
            if up in "ST":
                wanted = "C" if up == "S" else "Q"
                reflected = 2 * pos - ctrl if ctrl is not None and family == wanted else pos
                pts = np.vstack([reflected, pts])
            curve = np.vstack([pos, pts])
            new = list(_bezier(curve, samples_per_curve))
            pos, ctrl = curve[-1], curve[-2]
        lines[-1].extend(new)
        family = "C" if up in "CS" else "Q" if up in "QT" else ""
    return [np.asarray(line, dtype=np.float64) for line in lines]


def rdp(points: np.ndarray, epsilon: float) -> np.ndarray:
    """Ramer-Douglas-Peucker: keep the points farther than ``epsilon`` from the chord (endpoints stay)."""
    points = np.asarray(points, dtype=np.float64)
    if len(points) < 3 or epsilon <= 0:
        return points
    keep = np.zeros(len(points), dtype=bool)
    keep[0] = keep[-1] = True
    stack = [(0, len(points) - 1)]
    while stack:
        a, b = stack.pop()
        if b - a < 2:
            continue
        seg = points[b] - points[a]
        rel = points[a + 1:b] - points[a]
        norm = np.hypot(*seg)
        dist = np.abs(seg[0] * rel[:, 1] - seg[1] * rel[:, 0]) / norm if norm > 0 else np.hypot(rel[:, 0], rel[:, 1])
        j = int(np.argmax(dist))
        if dist[j] > epsilon:
            m = a + 1 + j
            keep[m] = True
            stack += [(a, m), (m, b)]
    return points[keep]


def lines_to_stroke3(lines: Sequence[np.ndarray]) -> np.ndarray:
    """Polylines -> stroke-3 (N, 3) float32 (magenta ``lines_to_strokes``)."""
    rows, prev = [], np.zeros(2)
    for line in lines:
        line = np.asarray(line, dtype=np.float64)
        if len(line) == 0:
            continue
        for k, pt in enumerate(line):
            rows.append((pt[0] - prev[0], pt[1] - prev[1], 1.0 if k == len(line) - 1 else 0.0))
            prev = pt
    return np.asarray(rows, dtype=np.float32).reshape(-1, 3)


def stroke3_to_lines(s3: np.ndarray) -> list[np.ndarray]:
    """Stroke-3 -> absolute polylines (a trailing stroke without a pen lift is kept)."""
    s3 = np.asarray(s3, dtype=np.float64).reshape(-1, 3)
    pts = np.cumsum(s3[:, :2], axis=0)
    cuts = np.flatnonzero(s3[:, 2] > 0.5) + 1
    return [seg for seg in np.split(pts, cuts) if len(seg)]


def stroke3_to_stroke5(s3: np.ndarray) -> np.ndarray:
    """Stroke-3 (N, 3) -> stroke-5 rows (N, 5), without S0 or END."""
    s3 = np.asarray(s3, dtype=np.float32).reshape(-1, 3)
    p = (s3[:, 2] > 0.5).astype(np.float32)
    return np.column_stack([s3[:, :2], 1 - p, p, np.zeros_like(p)]).astype(np.float32)


def stroke5_to_stroke3(s5: np.ndarray) -> np.ndarray:
    """Stroke-5 rows -> stroke-3, cut at the first end row (p3 largest); pen lifts where p2 is largest."""
    s5 = np.asarray(s5, dtype=np.float32).reshape(-1, 5)
    state = s5[:, 2:].argmax(axis=1)
    ends = np.flatnonzero(state == 2)
    n = int(ends[0]) if len(ends) else len(s5)
    return np.column_stack([s5[:n, :2], (state[:n] == 1).astype(np.float32)]).astype(np.float32)


def scale_factor(drawings: Sequence[np.ndarray]) -> float:
    """The std of every dx and dy of ``drawings`` (stroke-3) together, around zero's mean (no centring)."""
    offsets = np.concatenate([np.asarray(d, dtype=np.float64)[:, :2].ravel() for d in drawings])
    if offsets.size == 0:
        raise CodecError("no offsets to compute a scale factor from")
    return float(np.std(offsets))


def scale(s3: np.ndarray, factor: float) -> np.ndarray:
    """Divide the offsets of a stroke-3 drawing by ``factor`` (multiply with 1/factor to undo)."""
    out = np.array(s3, dtype=np.float32).reshape(-1, 3)
    out[:, :2] /= factor
    return out


def drawing_svg(s3: np.ndarray, x: float = 0.0, y: float = 0.0, size: float = 109.0, box: float | None = None,
                stroke_width: float = 3.0) -> str:
    """One stroke-3 drawing as an SVG ``<g>`` of polylines, fitted into a ``size`` square at (x, y).

    ``box`` fixes the source square (KanjiVG's 109) instead of fitting the drawing's bounding box."""
    lines = stroke3_to_lines(s3)
    if not lines:
        return f'<g transform="translate({x:g},{y:g})"></g>'
    pts = np.concatenate(lines)
    if box is not None:
        lo, span = np.zeros(2), float(box)
    else:
        lo, hi = pts.min(axis=0), pts.max(axis=0)
        span = float(max(hi - lo)) or 1.0
        lo = lo - (span - (hi - lo)) / 2
    k = size / span
    paths = []
    for line in lines:
        coords = " ".join(f"{(px - lo[0]) * k + x:.1f},{(py - lo[1]) * k + y:.1f}" for px, py in line)
        paths.append(f'<polyline points="{coords}"/>')
    return (f'<g fill="none" stroke="black" stroke-width="{stroke_width:g}" stroke-linecap="round" '
            f'stroke-linejoin="round">{"".join(paths)}</g>')


def grid_svg(drawings: Sequence[np.ndarray], cols: int = 4, cell: float = 128.0, margin: float = 10.0,
             box: float | None = None) -> str:
    """Stroke-3 drawings laid out in a grid, as a standalone SVG document."""
    cols = max(1, min(cols, len(drawings) or 1))
    rows = max(1, -(-len(drawings) // cols))
    inner = cell - 2 * margin
    body = "".join(drawing_svg(d, (i % cols) * cell + margin, (i // cols) * cell + margin, inner, box)
                   for i, d in enumerate(drawings))
    w, h = cols * cell, rows * cell
    return (f'<svg xmlns="http://www.w3.org/2000/svg" width="{w:g}" height="{h:g}" viewBox="0 0 {w:g} {h:g}">'
            f'<rect width="100%" height="100%" fill="white"/>{body}</svg>\n')
