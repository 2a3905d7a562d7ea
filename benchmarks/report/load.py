"""Result records for the report: read from the store, plus one row per AuroRA run's static merge."""
from pathlib import Path

from .. import store

STATIC = " (static merge)"


def read_records(results_dir) -> list[dict]:
    """Every result record under <results_dir>/runs (the one place the report reads the store)."""
    paths = store.result_paths(results_dir)
    if not paths:
        raise FileNotFoundError(f"no result files under {Path(results_dir) / store.RUNS_DIR}; run a sweep first")
    return [store.read_result(p) for p in paths]


def load_results(results_dir) -> list[dict]:
    """Result records; an AuroRA run's static-merge accuracy becomes a row '<method> (static merge)'."""
    records = read_records(results_dir)
    return records + static_merge_rows(records)


def static_merge_rows(records: list[dict]) -> list[dict]:
    """A merged model is the base model with other weights: its GMACs are the base model's (a linear probe's
    or full fine-tuning's run of the same task and model; None without one) and its speed was not measured."""
    static = [r for r in records if r["status"] == "ok" and r.get("accuracy_static_merge") is not None]
    if not static:
        return []
    base = {(r["task"], _model(r)): r["gmacs_per_image"] for r in records
            if r["status"] == "ok" and r["config"]["method"]["name"] in ("linear", "full")}
    return [{**r, "method": r["method"] + STATIC, "static_merge_of": r["method"], "accuracy": r["accuracy_static_merge"],
             "gmacs_per_image": base.get((r["task"], _model(r))), "train_img_per_s": None, "eval_img_per_s": None}
            for r in static]


def _model(record: dict) -> str:
    return record["config"]["model"]["name"]
