"""The report's figures: accuracy vs trainable parameters (pareto.png) and accuracy per task (per_task.png)."""
import statistics
from typing import NamedTuple

from .families import family_label, styles
from .labels import place_labels
from .tables import aggregate


def pareto(points: dict) -> set:
    """Methods no other method beats on both fewer trainable parameters and higher accuracy;
    points: {method: (params, accuracy, ...)}."""
    front = set()
    for m, (p, a, *_) in points.items():
        if not any((p2 <= p and a2 >= a) and (p2 < p or a2 > a) for m2, (p2, a2, *_) in points.items() if m2 != m):
            front.add(m)
    return front


class PlotPoints(NamedTuple):
    key: str  # what the y axis shows
    points: dict  # {method: (trainable params, accuracy, std over seeds)}
    left_out: list  # methods run on fewer of the plotted tasks
    tasks: list  # the tasks the points average over


def plot_points(s: dict, avgs: dict) -> PlotPoints:
    """With every task done for every method: the VTAB mean of groups or the task mean. Otherwise (an
    unfinished sweep, or a rank sweep sharing the folder on fewer tasks) the mean over the task set that covers
    the most (task, method) cells, ties to the set more methods have: no method is favoured by tasks others
    lack, and the rest are listed. The spread is the std over seeds of that same mean, taken per seed (the
    seeds every plotted task has)."""
    has = {m: {t for t in s["tasks"] if (t, m) in s["cells"]} for m in s["methods"]}
    candidates = [frozenset(s["tasks"])] + [frozenset(ts) for ts in has.values() if ts]
    members = lambda ts: [m for m in s["methods"] if ts <= has[m]]
    chosen = max(candidates, key=lambda ts: (len(ts) * len(members(ts)), len(members(ts))))
    inside = members(chosen)
    left_out = [m for m in s["methods"] if m not in inside]
    tasks = [t for t in s["tasks"] if t in chosen]
    if len(tasks) < len(s["tasks"]):
        key = f"mean of {len(tasks)}/{len(s['tasks'])} tasks"
        mean = lambda by_task: statistics.fmean(by_task.values())
    else:
        key = "mean_of_groups" if any(avgs[m].get("mean_of_groups") is not None for m in inside) else "task_mean"
        mean = lambda by_task: aggregate(by_task, s["suite"])[key]
    points = {}
    for m in inside:
        by_seed = [{t: s["accs"][(t, m)][seed] for t in tasks} for seed in sorted(_common_seeds(s, m, tasks))]
        per_seed = [mean(values) for values in by_seed]
        points[m] = (s["info"][m]["trainable"], mean({t: s["cells"][(t, m)]["mean"] for t in tasks}),
                     statistics.stdev(per_seed) if len(per_seed) > 1 else 0.0)
    return PlotPoints(key, points, left_out, tasks)


def _common_seeds(s: dict, method: str, tasks: list) -> set:
    return set.intersection(*(set(s["accs"][(t, method)]) for t in tasks))


def _pyplot():
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    return plt


def _legend_handles(s: dict, methods: list, style: dict) -> list:
    from matplotlib.lines import Line2D

    handles, family = [], None
    for m in methods:
        fam = s["info"][m]["family"]
        if fam != family and not s["info"][m]["static_merge_of"]:
            handles.append(Line2D([], [], ls="none", label=family_label(fam)))  # a family heading
            family = fam
        colour, marker = style[m]
        hollow = bool(s["info"][m]["static_merge_of"])
        handles.append(Line2D([], [], ls="none", marker=marker, ms=6, color=colour, mec="0.2" if not hollow else colour,
                              mfc="none" if hollow else colour, mew=0.6 if not hollow else 1.2, label=f"  {m}"))
    return handles


def method_styles(s: dict) -> dict:
    """Colour and marker of every method; a static-merge row takes its unmerged method's."""
    style = styles({m: s["info"][m]["family"] for m in s["methods"] if not s["info"][m]["static_merge_of"]})
    return {m: style[s["info"][m]["static_merge_of"] or m] for m in s["methods"]}


def pareto_figure(s: dict, key: str, points: dict, chance: float | None, title: str):
    """Adapters in the top panel, static-merge rows (near chance) in their own panel below, so they do not
    squash the adapters' range; error bars: std over seeds; every method named in the side legend."""
    plt = _pyplot()
    style = method_styles(s)
    main = {m: v for m, v in points.items() if not s["info"][m]["static_merge_of"]}
    static = {m: v for m, v in points.items() if s["info"][m]["static_merge_of"]}
    panels = [main] + ([static] if static else [])
    fig, axes = plt.subplots(len(panels), 1, sharex=True, figsize=(9.5, 6.6 if static else 4.8), dpi=120,
                             squeeze=False, gridspec_kw={"height_ratios": [3, 1.25][:len(panels)]})
    axes = axes[:, 0]
    for ax, pts in zip(axes, panels):
        for m, (p, a, err) in pts.items():
            colour, marker = style[m]
            hollow = bool(s["info"][m]["static_merge_of"])
            ax.errorbar(p, a, yerr=err or None, fmt=marker, ms=6.5, color=colour, mfc="none" if hollow else colour,
                        mec=colour if hollow else "0.2", mew=1.2 if hollow else 0.6, ecolor=colour, elinewidth=1,
                        capsize=3, zorder=3)
        ax.set_xscale("log")
        ax.grid(True, which="both", alpha=0.25)
        ax.margins(x=0.12, y=0.15)
    front = sorted(points[m][:2] for m in pareto(main))
    extra = []
    if len(front) > 1:
        extra += axes[0].plot(*zip(*front), color="0.3", lw=0.9, ls="--", zorder=2, label="Pareto front")
    axes[0].set_ylabel(f"accuracy (%)\n{key.replace('_', ' ')}")
    axes[0].set_title(title, fontsize=11)
    if static:
        axes[1].set_ylabel("merged forms\naccuracy (%)")
        if chance is not None:
            extra.append(axes[1].axhline(chance, color="0.5", lw=0.9, ls=":", label=f"chance ({chance:.1f}%)"))
        ends = [a - e for _, a, e in static.values()] + [a + e for _, a, e in static.values()]
        ends += [chance] if chance is not None else []
        lo, hi = min(ends), max(ends)
        axes[1].set_ylim(max(0, lo - 0.15 * (hi - lo) - 1), hi + 0.25 * (hi - lo) + 1)
    axes[-1].set_xlabel("trainable parameters (incl. head, log scale)")
    fig.subplots_adjust(left=0.1, right=0.74, top=0.94, bottom=0.09, hspace=0.08)
    legend = fig.legend(handles=_legend_handles(s, list(points), style) + extra, loc="upper left",
                        bbox_to_anchor=(0.755, 0.95), fontsize=8, frameon=False, handletextpad=0.3, borderaxespad=0)
    # many variants (a tuning's rates, a rank sweep) make the legend longer than the figure: grow the figure
    # (the axes with it, by their fractions) so the legend ends above its bottom edge, not cut off by it
    height = legend.get_window_extent(fig.canvas.get_renderer()).height / fig.dpi / 0.93
    if height > fig.get_figheight():
        fig.set_figheight(height)
    for ax, pts in zip(axes, panels):
        place_labels(ax, {m.replace(" (static merge)", " (static)").replace(" (calibrated merge)", " (calibrated)"): v[:2]
                          for m, v in pts.items()}, fontsize=8)
    return fig


def per_task_figure(s: dict, task_info: dict, title: str, columns: int = 5):
    """One panel per task: every method's mean accuracy with its seed spread (bar: std over seeds; small
    dots: single seeds); panel titles give the test size and the binomial SE of one accuracy."""
    plt = _pyplot()
    style = method_styles(s)
    methods = [m for m in s["methods"] if not s["info"][m]["static_merge_of"]]
    tasks = s["tasks"]
    cols = min(columns, len(tasks))
    rows = -(-len(tasks) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(1.8 + 2.7 * cols, rows * (0.23 * len(methods) + 1.3)), dpi=120,
                             squeeze=False, sharey=True)
    ys = {m: len(methods) - i for i, m in enumerate(methods)}
    for ax, task in zip(axes.flat, tasks):
        for m in methods:
            if (task, m) not in s["cells"]:
                continue
            c, (colour, marker) = s["cells"][(task, m)], style[m]
            seeds = list(s["accs"][(task, m)].values())
            ax.scatter(seeds, [ys[m]] * len(seeds), s=9, facecolors="none", edgecolors=colour, lw=0.6, zorder=2)
            ax.errorbar(c["mean"], ys[m], xerr=c["std"] or None, fmt=marker, ms=5, color=colour, mec="0.2", mew=0.5,
                        ecolor=colour, capsize=2, zorder=3)
        for y in _family_breaks(s, methods, ys):
            ax.axhline(y, color="0.8", lw=0.6, zorder=1)
        ti = task_info[task]
        ax.set_title(f"{task}{' (' + ti['group'] + ')' if ti['group'] else ''}\n{ti['test_label']}", fontsize=9)
        ax.grid(True, axis="x", alpha=0.3)
        ax.tick_params(labelsize=8)
        ax.margins(x=0.1)
    for ax in axes.flat[len(tasks):]:
        ax.set_visible(False)
    for ax in axes[:, 0]:
        ax.set_yticks(list(ys.values()), list(ys))
        ax.set_ylim(0.3, len(methods) + 0.7)
    for ax in axes[-1]:
        ax.set_xlabel("accuracy (%)", fontsize=9)
    fig.suptitle(title, fontsize=11)
    fig.tight_layout()
    return fig


def _family_breaks(s: dict, methods: list, ys: dict) -> list:
    """y positions between consecutive methods of different families."""
    return [ys[a] - 0.5 for a, b in zip(methods, methods[1:]) if s["info"][a]["family"] != s["info"][b]["family"]]


def chance_level(results: list[dict], tasks: list) -> float | None:
    """Mean over tasks of 100 / classes: where a model that guesses lands, for the static-merge panel."""
    classes = {r["task"]: r["num_classes"] for r in results if r["status"] == "ok" and "num_classes" in r}
    if not all(t in classes for t in tasks):
        return None
    return statistics.fmean(100.0 / classes[t] for t in tasks)

