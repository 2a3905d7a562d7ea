"""Where a sweep's time went, from its records' `timing` (run/timing.py): per GPU and per task, the seconds in
training, evaluation, data loading, capture/compile and model building, the seconds in runs that failed
(busy: a failed run holds its GPU too; no phases), and the time each GPU had no run (before its first,
between consecutive ones, after its last).

A sweep may take several segments (an interrupted one resumed): `segments` are their [start, end] wall
times, and a GPU's idle time is counted within each. Runs overlapping on one GPU (several workers on it)
count once towards its busy time, each towards the phase sums; so per GPU, busy + idle = the wall time,
and the phase columns + other = the finished runs' own time (`in_runs`; failed runs: `failed_runs`).
Failures recorded before they carried timing are listed, not timed."""

# the breakdown's columns: each sums these phases of run/timing.py
COLUMNS = {
    "train": ("train_steady",),
    "eval": ("eval",),
    "merge_eval": ("merge_eval",),  # AuroRA's static-merge accuracy: one more pass over the test set
    "data_load": ("data_load", "to_device"),
    "capture_compile": ("graph_capture", "first_step"),
    "model_build": ("model_build", "macs_count"),
    "setup": ("setup", "device_init"),
}


def _columns(timing: dict) -> dict:
    return {col: sum(timing.get(f"{p}_seconds", 0.0) for p in phases) for col, phases in COLUMNS.items()}


def _span(r: dict) -> tuple:
    return r["timing"]["wall_start"], r["timing"]["wall_end"]


def _merged(intervals: list) -> list:
    out = []
    for a, b in sorted(intervals):
        if out and a <= out[-1][1]:
            out[-1][1] = max(out[-1][1], b)
        else:
            out.append([a, b])
    return out


def idle(spans: list, segments: list) -> dict:
    """{'busy', 'idle_before', 'idle_between', 'idle_after'} seconds of one GPU whose runs took `spans`
    (wall start, end), within `segments`; the four add up to the segments' total."""
    out = dict.fromkeys(("busy", "idle_before", "idle_between", "idle_after"), 0.0)
    for start, end in segments:
        inside = _merged([(max(a, start), min(b, end)) for a, b in spans if b > start and a < end])
        if not inside:
            out["idle_before"] += end - start
            continue
        out["idle_before"] += inside[0][0] - start
        out["idle_after"] += end - inside[-1][1]
        out["idle_between"] += sum(b[0] - a[1] for a, b in zip(inside, inside[1:]))
        out["busy"] += sum(b - a for a, b in inside)
    return out


def _sums(records: list) -> dict:
    out = {"runs": len(records), "in_runs": 0.0, **dict.fromkeys(COLUMNS, 0.0)}
    for r in records:
        start, end = _span(r)
        out["in_runs"] += end - start
        for col, v in _columns(r["timing"]).items():
            out[col] += v
    out["other"] = out["in_runs"] - sum(out[c] for c in COLUMNS)  # record writing, logging, the timer's other
    return out


def gpu_of(record: dict) -> str:
    return f"{record['timing'].get('host', '?')}:{record['timing']['gpu']}"


def breakdown(records: list, segments: list) -> dict:
    """{'wall_seconds', 'gpus': {gpu: sums, failed runs' seconds + idle}, 'total': the same summed over GPUs,
    'tasks': {task: sums and data-cache counts}, 'failed': [run keys and errors], 'untimed': runs without
    timing}."""
    has_timing = [r for r in records if isinstance(r.get("timing"), dict)]
    timed = [r for r in has_timing if r["status"] == "ok"]
    by_gpu, failed_by_gpu, by_task = {}, {}, {}
    for r in timed:
        by_gpu.setdefault(gpu_of(r), []).append(r)
        by_task.setdefault(r["task"], []).append(r)
    for r in has_timing:
        if r["status"] != "ok":
            failed_by_gpu.setdefault(gpu_of(r), []).append(r)
    gpus = {}
    for g in sorted({*by_gpu, *failed_by_gpu}):
        ok, failed = by_gpu.get(g, []), failed_by_gpu.get(g, [])
        gpus[g] = {**_sums(ok), "failed_runs": sum(end - start for start, end in map(_span, failed)),
                   **idle([_span(r) for r in ok + failed], segments)}
    keys = ("runs", "in_runs", *COLUMNS, "other", "failed_runs", "busy", "idle_before", "idle_between", "idle_after")
    total = {k: sum(g[k] for g in gpus.values()) for k in keys}
    tasks = {}
    for task, rs in by_task.items():
        caches = [origin for r in rs for origin in (r["timing"].get("data_cache") or {}).values()]
        tasks[task] = {**_sums(rs), "num_classes": rs[0]["num_classes"], "num_train": rs[0]["num_train"],
                       "num_eval": rs[0]["num_eval"], "methods": sorted(r["method"] for r in rs),
                       "cache_hits": caches.count("hit"), "decoded": caches.count("decoded"),
                       "evals": sum(r["timing"].get("evals", 0) for r in rs)}
    failed = [{"task": r["task"], "method": r["method"], "error": r.get("error")}
              for r in records if r["status"] != "ok"]
    return {"wall_seconds": sum(end - start for start, end in segments), "segments": segments, "gpus": gpus,
            "total": total, "tasks": tasks, "failed": failed,
            "untimed": sum(r["status"] == "ok" and not isinstance(r.get("timing"), dict) for r in records)}


def _s(x: float) -> str:
    return f"{x:,.1f}"


HEAD = ("train", "eval", "merge eval", "data load", "capture/compile", "model build", "setup", "other in runs")


def markdown(b: dict) -> str:
    """The breakdown as two tables (per GPU, per task) under a line of totals."""
    lines = [f"Wall time: {_s(b['wall_seconds'])} s over {len(b['segments'])} segment(s); "
             f"{b['total'].get('runs', 0)} timed runs"
             + (f", {len(b['failed'])} failed" if b["failed"] else "")
             + (f", {b['untimed']} without timing" if b["untimed"] else "") + ".", "",
             "Seconds per GPU (busy + idle = wall; the phase columns + other = time in the finished runs, which "
             "exceeds busy when several workers share a GPU; `failed runs`: time in runs that failed, busy too):", "",
             "| GPU | runs | in runs | " + " | ".join(HEAD) + " | failed runs | busy | idle before | idle between | "
             "idle after |", "|---" * (len(HEAD) + 8) + "|"]
    cols = (*COLUMNS, "other")
    for name, g in [*b["gpus"].items(), ("all", b["total"])]:
        lines.append(f"| {name} | {g['runs']} | {_s(g['in_runs'])} | " + " | ".join(_s(g[c]) for c in cols)
                     + f" | {_s(g['failed_runs'])} | {_s(g['busy'])} | {_s(g['idle_before'])} | {_s(g['idle_between'])} | "
                       f"{_s(g['idle_after'])} |")
    lines += ["", "Seconds per task (all its runs):", "",
              "| task | classes | train / test images | runs | in runs | " + " | ".join(HEAD)
              + " | evals | cache hit / decoded |", "|---" * (len(HEAD) + 7) + "|"]
    for task, t in b["tasks"].items():
        lines.append(f"| {task} | {t['num_classes']} | {t['num_train']:,} / {t['num_eval']:,} | {t['runs']} | "
                     f"{_s(t['in_runs'])} | " + " | ".join(_s(t[c]) for c in cols)
                     + f" | {t['evals']} | {t['cache_hits']} / {t['decoded']} |")
    for f in b["failed"]:
        lines.append(f"\nFAILED {f['task']}/{f['method']}: {f['error']}")
    return "\n".join(lines) + "\n"
