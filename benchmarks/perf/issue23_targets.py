"""Issue 23's targets against what benchmarks/perf/issue23.sh measured, as a Markdown table (stdout).

    python -m aurora_bench.perf.issue23_targets results/issue23

A figure whose step failed or ran out of time is 'not measured' (its log says why), never a guess.
"""
import json
import re
import sys
from pathlib import Path

MISSING = "not measured (see issue23.log)"


def _json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def _warm(cost, mode):
    """The warm (second) process of a compile_cost mode, or None."""
    return ((cost or {}).get("modes") or {}).get(mode, {}).get("warm")


def _row(what: str, measured, goal: str, met) -> str:
    if not measured:  # its step failed or ran out of time
        return f"| {what} | {MISSING} | {goal} | – |"
    verdict = "–" if met is None else ("**met**" if met else "not met")
    return f"| {what} | {measured} | {goal} | {verdict} |"


LABELS = {"regional": "new default (regional compile, warm cache)", "regional-autotune": "regional-autotune (warm cache)"}
RATIO = {"regional": "new / previous default", "regional-autotune": "regional-autotune / previous default"}


def _at(name: str, *results) -> str:
    """A row's '<model> b<batch>' from the first result that ran (a step that wrote nothing left no batch)."""
    batch = next((r["batch"] for r in results if r and r.get("batch")), None)
    return f"{name} b{batch}" if batch else name


def _throughput_rows(cost, name: str, step_goal_ms=None, mode="regional", candidate=None) -> list:
    """The step of `mode` (from `candidate`'s compile_cost, default `cost`'s) against the previous default (no
    compile, from `cost`), each judged by the step goal, or else the >= 2x throughput goal."""
    candidate = cost if candidate is None else candidate
    none, compiled = _warm(cost, "none"), _warm(candidate, mode)
    batch = (candidate or cost or {}).get("batch")
    at = _at(name, candidate, cost)
    img_s = lambda r: batch * 1000 / r["step_ms"]  # noqa: E731
    rows = [_row(f"{at} step, previous default (no compile)",
                 none and f"{none['step_ms']:.1f} ms, {img_s(none):,.0f} img/s", "baseline", None)] \
        if mode == "regional" else []
    rows.append(_row(f"{at} step, {LABELS[mode]}",
                     compiled and f"{compiled['step_ms']:.1f} ms, {img_s(compiled):,.0f} img/s",
                     f"<= {step_goal_ms} ms" if step_goal_ms else "", None if not (compiled and step_goal_ms)
                     else compiled["step_ms"] <= step_goal_ms))
    if none and compiled:
        ratio = none["step_ms"] / compiled["step_ms"]
        rows.append(_row(f"{at} throughput, {RATIO[mode]}", f"{ratio:.2f}x",
                         ">= 2x" if not step_goal_ms else "", ratio >= 2 if not step_goal_ms else None))
    return rows


def _compile_rows(cost, mode="regional", name="") -> list:
    """Cold and warm compile seconds and graph breaks of a compile_cost mode; `name` prefixes the labels (the
    regional rows keep the unprefixed labels of the first H100 table, which measured ViT-B/16)."""
    cold = ((cost or {}).get("modes") or {}).get(mode, {}).get("cold")
    warm = _warm(cost, mode)
    at = f"{name} {mode}" if name else mode
    timed = cold and cold["compile"].get("autotuned")  # GEMMs max-autotune timed; 0 or absent elsewhere
    rows = [_row(f"{at} compile, cold process (s)", cold and f"{cold['compile']['seconds']:.1f}"
                 + (f" ({timed} GEMMs timed)" if timed else ""), "", None),
            _row(f"{at} compile, warm process (s)", warm and f"{warm['compile']['seconds']:.1f} "
                 f"(cache: {warm['compile']['cache']})", "<= 5 s", warm and warm["compile"]["seconds"] <= 5)]
    breaks = [m["compile"]["graph_breaks"] for m in (cold, warm) if m]
    rows.append(_row(f"graph breaks in the {f'{at}-' if mode != 'regional' else ''}compiled adapted blocks (cold, "
                     "warm process)", breaks and ", ".join(map(str, breaks)), "0", breaks and not any(breaks)))
    return rows


def _autotune_rows(cost, tuned, name: str, step_goal_ms=None) -> list:
    """regional-autotune (its own step's compile_cost) against the previous default and, deciding whether it
    becomes the default, against regional compile, both measured in the same call."""
    regional, autotuned = _warm(cost, "regional"), _warm(tuned, "regional-autotune")
    rows = _throughput_rows(cost, name, step_goal_ms, mode="regional-autotune", candidate=tuned)
    rows.append(_row(f"{_at(name, tuned, cost)} step, regional-autotune / regional", regional and autotuned and
                     f"{autotuned['step_ms']:.1f} / {regional['step_ms']:.1f} ms "
                     f"({regional['step_ms'] / autotuned['step_ms']:.2f}x)", "faster",
                     regional and autotuned and autotuned["step_ms"] < regional["step_ms"]))
    return rows + _compile_rows(tuned, "regional-autotune", name)


def _ratio_row(speed, setting="new default") -> str:
    batches = (speed or {}).get("batches") or {}
    both = [int(b) for b, r in batches.items() if {"full", "aurora_r2_qv"} <= set(r)]
    if not both:
        return _row(f"ViT-B/16 AuroRA / full step, {setting}", None, "<= 0.80", None)
    batch = max(both)  # the target's batch (256): the largest measured
    r = batches[str(batch)]
    ratio = r["aurora_r2_qv"]["train_step_s"] / r["full"]["train_step_s"]
    return _row(f"ViT-B/16 b{batch} AuroRA / full step, {setting} ({speed['compile']})",
                f"{ratio:.3f} ({1000 * r['aurora_r2_qv']['train_step_s']:.1f} / "
                f"{1000 * r['full']['train_step_s']:.1f} ms)", "<= 0.80", ratio <= 0.80)


def _blas_rows(cublas, cublaslt) -> list:
    """Each method's step with every GEMM through cuBLASLt against cuBLAS (b16_cublaslt against b16_speed: the
    same harness, compile cache and card), and the AuroRA / full ratio under cuBLASLt."""
    def step(res, batch, method):
        return ((((res or {}).get("batches") or {}).get(batch) or {}).get(method) or {}).get("train_step_s")

    ran = [(res or {}).get("blas") for res in (cublas, cublaslt)]
    if cublas and cublaslt and ran != ["Cublas", "Cublaslt"]:  # e.g. a shell that exported TORCH_BLAS_PREFER_CUBLASLT
        return [f"| ViT-B/16 step, cuBLASLt / cuBLAS | not measured: the steps ran {ran[0]} / {ran[1]} | faster | – |"]
    rows = []
    for b in sorted(((cublaslt or {}).get("batches") or {}), key=int):
        for method in ("full", "aurora_r2_qv"):
            lt, base = step(cublaslt, b, method), step(cublas, b, method)
            rows.append(_row(f"ViT-B/16 b{b} {method} step, cuBLASLt / cuBLAS", lt and base and
                             f"{1000 * lt:.1f} / {1000 * base:.1f} ms ({base / lt:.2f}x)", "faster",
                             lt and base and lt < base))
    return rows + ([_ratio_row(cublaslt, "new default with cuBLASLt")] if cublaslt else [])


def _text(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


def _pytest_summary(path: Path):
    """pytest's summary ('2 passed') of a step's output, or None (cut off before it)."""
    found = re.search(r"(\d+ (passed|failed|skipped).*) in ", _text(path))
    return found and found.group(1)


def targets(out: Path) -> str:
    s14, b16 = _json(out / "s14_b64" / "compile_cost.json"), _json(out / "b16_b64" / "compile_cost.json")
    # the candidate default: regional compile under inductor's max-autotune (its own steps)
    s14_tuned, b16_tuned = (_json(out / f"{m}_autotune" / "compile_cost.json") for m in ("s14", "b16"))
    speed = _json(out / "b16_speed" / "speed.json")
    device = next((c["device"] for c in (s14, b16, s14_tuned, b16_tuned, speed) if c), "unknown")
    breaks = re.search(r"graph breaks: (\d+)", _text(out / "breaks.txt"))
    tests, tuned_test = _pytest_summary(out / "cuda_tests.txt"), _pytest_summary(out / "autotune_test.txt")
    passed = lambda summary: summary and not re.search("failed|error|skipped", summary)  # noqa: E731
    rows = [*_throughput_rows(s14, "DINOv2 ViT-S/14"), *_throughput_rows(b16, "ViT-B/16", step_goal_ms=13),
            *_compile_rows(b16), _ratio_row(speed), *_blas_rows(speed, _json(out / "b16_cublaslt" / "speed.json")),
            _row("graph breaks, profile_step (compiled ViT-B/16 step)", breaks and breaks.group(1), "0",
                 breaks and breaks.group(1) == "0"),
            _row("CUDA tests of the sigma op", tests, "all pass", passed(tests))]
    if s14_tuned or b16_tuned or tuned_test:
        rows += [*_autotune_rows(s14, s14_tuned, "DINOv2 ViT-S/14"),
                 *_autotune_rows(b16, b16_tuned, "ViT-B/16", step_goal_ms=13),
                 _row("CUDA test of regional-autotune (GEMMs timed, eager's outputs and gradients)", tuned_test,
                      "passes", passed(tuned_test))]
    return "\n".join([f"Issue 23 targets, {device} ({out}); AuroRA r=2 q/v, random weights, bf16 autocast on "
                      "CUDA, each step CUDA-graphed there.", "",
                      "| what | measured | target | |", "|---|---|---|---|", *rows])


if __name__ == "__main__":
    print(targets(Path(sys.argv[1])))
