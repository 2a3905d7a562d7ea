"""The sections of report.md, each a list of lines."""
from ..data.tasks import VTAB_GROUPS
from .families import family_label
from .stats import FEW_PAIRS, LEVEL, RESAMPLES

AVG_COLS = ["natural", "specialized", "structured", "mean_of_groups", "task_mean"]
SETTINGS = ["rank", "targets", "lr"]  # what tells variants of one method apart (tables._settings)


def fmt(v, spec: str = ".1f") -> str:
    return "–" if v is None else format(v, spec)


def _cell(c) -> str:
    if not c:
        return "–"
    return f"{c['mean']:.1f} ± {c['std']:.1f} (n={c['n']})" if c["n"] > 1 else f"{c['mean']:.1f} (n=1)"


def table(header: list, rows: list) -> list:
    """A markdown table: a header row, its rule, a row per list of cells."""
    return ["| " + " | ".join(header) + " |", "|---" * len(header) + "|"] + ["| " + " | ".join(r) + " |" for r in rows]


def accuracy_section(s: dict, avgs: dict) -> list:
    cols = [k for k in AVG_COLS if any(k in a for a in avgs.values())]
    grouped = any(g in cols for g in VTAB_GROUPS)
    families = list(dict.fromkeys(family_label(s["info"][m]["family"]) for m in s["methods"]
                                  if not s["info"][m]["static_merge_of"]))
    text = ("Accuracy (%): mean ± std over seeds of the final-epoch accuracy on each run's evaluation split "
            f"({'; '.join(s['accuracy_of'])}); n is the number of seeds. `task_mean` is the plain mean over tasks of "
            "the seed means")
    text += ((", the VTAB group columns are the means over each group's tasks and `mean_of_groups` is the mean of "
              "those group means.") if grouped else ".")
    text += (f" Rows: by family ({', '.join(families)}), then by trainable parameters; static-merge rows (AuroRA's "
             "approximate merged form, evaluated on the same trained model) last. `rank` and `targets` are the "
             "method's (its defaults filled in; – for a method without them), `lr` the learning rate its runs "
             "trained with (a range where it was tuned per task).")
    settings = lambda m: [(s["info"][m][k] or "–").replace("|", "\\|") for k in SETTINGS]  # noqa: E731  (a regex's |)
    rows = [[m] + settings(m) + [_cell(s["cells"].get((t, m))) for t in s["tasks"]]
            + [fmt(avgs[m].get(k)) for k in cols] for m in s["methods"]]
    return [text, ""] + table(["method", *SETTINGS] + s["tasks"] + cols, rows)


def commits_note(mixed: dict) -> list:
    """A note under the accuracy table on the (task, method) rows whose seeds different commits made (none: [])."""
    if not mixed:
        return []
    shown = "; ".join(f"{t} / {m}: {', '.join(c)}" for (t, m), c in list(mixed.items())[:3])
    more = f"; and {len(mixed) - 3} more" if len(mixed) > 3 else ""
    return ["", f"Code versions: the seeds of {len(mixed)} (task, method) cell(s) were made by different commits "
            f"({shown}{more}). Their configs match, so they are averaged as one recipe, but a code change between "
            "those commits may have changed their numbers (each record's `git` says which made it)."]


def tasks_section(tinfo: dict) -> list:
    text = ("Test-set noise. `test images` is each task's evaluation size (`num_eval` in the records); `binomial "
            "SE` is the standard error of one accuracy measured on that many images, sqrt(p(1-p)/n), at p = the "
            "task's mean accuracy over methods (static-merge rows left out). Two single runs that differ by less "
            "than about 2√2 SE (≈ 2.8 SE) differ within test-set noise alone, before seed noise.")
    groups = any(i["group"] for i in tinfo.values())
    header = ["task"] + (["group"] if groups else []) + ["test images", "mean accuracy", "binomial SE (pt)"]
    rows = [[t] + ([i["group"] or "–"] if groups else []) +
            [fmt(i["num_eval"], ","), fmt(i["mean_accuracy"]), fmt(i["binomial_se"], ".2f")] for t, i in tinfo.items()]
    return ["## Tasks", "", text, ""] + table(header, rows)


def cost_section(s: dict, refs: dict) -> list:
    text = ("Trainable parameters include the head (mean over tasks); `w/o head` is what the method adds or "
            "unfreezes. GMACs per image at inference (fvcore, 1 multiply-add = 1, SDPA and the AuroRA nonlinearity "
            "counted); a static-merge row is the base model with merged weights, so its GMACs are the linear probe's "
            "(or full fine-tuning's) on the same tasks (– without such a run) and its speed was not measured (–). "
            "Ratios are of trainable "
            "parameters and of GMACs.")
    header = ["method", "trainable", "w/o head", "GMACs", "train img/s"]
    for label, (ref, _) in refs.items():
        header += [f"params vs {label}", f"GMACs vs {label}"]
    rows = []
    for m in s["methods"]:
        i = s["info"][m]
        row = [m, f"{i['trainable']:,.0f}", f"{i['params_wo_head']:,}", fmt(i["gmacs"], ".4f"),
               fmt(i["train_img_per_s"], ".0f")]
        for _, c in refs.values():
            cm = c.get(m)
            row += [fmt(cm and cm["param_ratio"], ".3g") + ("x" if cm and cm["param_ratio"] is not None else ""),
                    fmt(cm and cm["mac_ratio"], ".4f") + ("x" if cm and cm["mac_ratio"] is not None else "")]
        rows.append(row)
    return ["## Cost", "", text, ""] + table(header, rows)


def comparisons_section(s: dict, paired: dict, missing: list) -> list:
    """paired: {reference: {method: paired_comparison or None}}."""
    lines = ["## Paired comparisons", "",
             f"Each method against each reference on the (task, seed) runs both have: the mean of the paired "
             f"accuracy differences (method − reference, points) with a {LEVEL:.0%} bootstrap interval "
             f"({RESAMPLES:,} resamples of the pairs within each task, seeded), and a two-sided Wilcoxon signed-rank "
             "test across tasks on the per-task mean differences. `within noise`: the interval covers zero. The "
             "interval is about seed noise on these tasks (each task keeps its pairs; the spread between tasks is "
             "not noise); the Wilcoxon test asks whether the sign holds across tasks, and with n tasks its p "
             "cannot go below 2/2^n (0.5 at 2 tasks, 0.0625 at 5). "
             f"`few pairs`: under {FEW_PAIRS} pairs the interval is little wider than the differences themselves "
             "and understates the uncertainty. "
             "Static-merge rows are left out (see the accuracy table). "
             "This paired mean (`paired_mean_diff` in comparisons.csv) is not methods.csv's "
             "`vs_<reference>_task_mean_diff`, the difference of the two methods' task means, each task's mean over "
             "all its seeds, on the tasks both have: the two agree only when both ran the same seeds, as many on "
             "each task."]
    for ref in missing:
        lines += ["", f"Reference `{ref}`: not in these results."]
    for ref, by_method in paired.items():
        rows = []
        for m, c in by_method.items():
            if c is None:
                rows.append([m, "0", "–", "–", "–", "–", "no shared (task, seed) runs"])
                continue
            ci = "–" if c["ci_low"] is None else f"[{c['ci_low']:+.2f}, {c['ci_high']:+.2f}]"
            rows.append([m, str(c["pairs"]), str(c["tasks"]), f"{c['paired_mean_diff']:+.2f}", ci,
                         fmt(c["wilcoxon_p"], ".3g"), c["verdict"]])
        lines += ["", f"### vs `{ref}`", ""] + table(
            ["method", "pairs", "tasks", "paired mean Δ (pt)", f"{LEVEL:.0%} interval", "Wilcoxon p", "verdict"], rows)
    return lines
