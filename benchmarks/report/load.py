"""Result records for the report: read from the store, plus a row per merged form of an AuroRA run (static,
and calibrated where the run measured it)."""
from pathlib import Path

from .. import store
from ..errors import UserError


class NoResults(UserError, FileNotFoundError):
    """A results folder holds no result file."""


MERGE_FORMS = ("static", "calibrated")


def read_records(results_dir) -> list[dict]:
    """Every valid result record under <results_dir>/runs (the one place the report reads the store); a file
    that is not a record is quarantined with a warning, never a crash. Seeds of one (task, method) made with
    different configs raise ConfigChanged, as a sweep that would mix them is refused: one row would average
    two recipes."""
    if not store.result_paths(results_dir):
        raise NoResults(f"no result files under {Path(results_dir) / store.RUNS_DIR}; run a sweep first")
    records = store.load_all(results_dir)
    mixed = store.mixed_recipes(records)
    if mixed:
        raise store.ConfigChanged(store.folder_mix_message(results_dir, mixed))
    return records


def mixed_commits(records: list[dict]) -> dict:
    """{(task, method): [commits]} of the pairs whose finished seeds were made by more than one commit (short
    hashes, '+changes' for a checkout with local changes; records without a commit and merged-form rows left
    out). Their configs
    match, so the store counts them as one recipe; the code between them may still differ."""
    commits = {}
    for r in records:
        git = r.get("git") or {}
        if r["status"] == "ok" and git.get("commit") and not r.get("static_merge_of"):
            name = git["commit"][:7] + ("+changes" if git.get("dirty") else "")
            commits.setdefault((r["task"], r["method"]), set()).add(name)
    return {pair: sorted(c) for pair, c in commits.items() if len(c) > 1}


def load_results(results_dir) -> list[dict]:
    """Result records; an AuroRA run's merged-form accuracies become rows '<method> (static merge)' and
    '<method> (calibrated merge)'."""
    records = read_records(results_dir)
    return records + merge_rows(records)


def merge_rows(records: list[dict]) -> list[dict]:
    """A merged model is the base model with other weights: its GMACs are the base model's (a linear probe's
    or full fine-tuning's run of the same task and model; None without one) and its speed was not measured.
    `static_merge_of` names the method a merged row derives from."""
    base = {(r["task"], _model(r)): r["gmacs_per_image"] for r in records
            if r["status"] == "ok" and r["config"]["method"]["name"] in ("linear", "full")}
    return [{**r, "method": f"{r['method']} ({form} merge)", "static_merge_of": r["method"],
             "accuracy": r[f"accuracy_{form}_merge"], "gmacs_per_image": base.get((r["task"], _model(r))),
             "train_img_per_s": None, "eval_img_per_s": None}
            for form in MERGE_FORMS for r in records
            if r["status"] == "ok" and r.get(f"accuracy_{form}_merge") is not None]


def _model(record: dict) -> str:
    return record["config"]["model"]["name"]
