"""Point labels that overlap neither each other nor the points: each label takes the nearest free spot on
rings of growing radius around its point, with a leader line once it sits away from the point."""
import math

RINGS = (5, 12, 20, 30, 42, 56)  # points from the marker's centre
ANGLES = (0, 30, -30, 180, 150, -150, 60, -60, 120, -120, 90, -90)  # degrees; right side first


def _overlap(a, b) -> float:
    w = min(a.x1, b.x1) - max(a.x0, b.x0)
    h = min(a.y1, b.y1) - max(a.y0, b.y0)
    return w * h if w > 0 and h > 0 else 0.0


def place_labels(ax, labels: dict, marker_px: float = 6.0, fontsize: float = 7) -> list:
    """labels: {text: (x, y)} in data coordinates. Returns the annotations, placed in the given order.
    Where every spot collides, the label takes the spot with the least overlap."""
    from matplotlib.transforms import Bbox

    fig = ax.figure
    fig.canvas.draw()  # fixes the data -> pixel transform and gives a renderer to measure text with
    renderer = fig.canvas.get_renderer()
    to_px = ax.transData.transform
    inside = ax.get_window_extent(renderer)
    taken = [Bbox.from_extents(px - marker_px, py - marker_px, px + marker_px, py + marker_px)
             for px, py in (to_px(xy) for xy in labels.values())]
    placed = []
    for text, xy in labels.items():
        ann = ax.annotate(text, xy, xytext=(0, 0), textcoords="offset points", fontsize=fontsize, annotation_clip=False)
        best = None
        for ring in RINGS:
            for angle in ANGLES:
                dx, dy = ring * math.cos(math.radians(angle)), ring * math.sin(math.radians(angle))
                ann.set_position((dx, dy))
                ann.set_horizontalalignment("left" if dx > 1e-6 else "right" if dx < -1e-6 else "center")
                ann.set_verticalalignment("bottom" if dy > 1e-6 else "top" if dy < -1e-6 else "center")
                box = ann.get_window_extent(renderer)
                cost = sum(_overlap(box, t) for t in taken) + (0 if _contains(inside, box) else 1e6)
                if best is None or cost < best[0]:
                    best = (cost, (dx, dy), ann.get_horizontalalignment(), ann.get_verticalalignment(), box, ring)
                if cost == 0:
                    break
            if best[0] == 0:
                break
        _, pos, ha, va, box, ring = best
        ann.remove()  # the probe; the final label gets a leader line when it sits off the first ring
        leader = dict(arrowstyle="-", lw=0.5, color="0.45", shrinkA=0, shrinkB=2) if ring > RINGS[0] else None
        placed.append(ax.annotate(text, xy, xytext=pos, textcoords="offset points", fontsize=fontsize, ha=ha,
                                  va=va, arrowprops=leader, annotation_clip=False))
        taken.append(box)
    return placed


def _contains(outer, box) -> bool:
    return outer.x0 <= box.x0 and box.x1 <= outer.x1 and outer.y0 <= box.y0 and box.y1 <= outer.y1
