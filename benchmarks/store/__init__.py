"""The result store: one JSON record per run under `<output>/runs/`, keyed by (task, method variant, seed).

Every writer (sweep, run, tune, the executors) and every reader (report, tune's choice) goes through here.
What it promises:
- a record on file is whole, valid (record.py) and durable (files.py);
- a finished ('ok') record is never replaced by a record of another config unless asked (`replace=True`, which
  first keeps a copy in `<output>/replaced/runs/`), nor by a failure of the same config; a failure holds no
  result, so a run of any config replaces it (`decide` says what a sweep does with each run);
- a record that cannot be written is retried, then kept outside the folder and named: never lost;
- a file in `runs/` that is not a valid record is moved to `<output>/quarantine/` with a warning naming it:
  readers never crash on it;
- writers with clashing configs are refused, and a run is made by one live process at a time (locks.py).
"""
import hashlib
import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from ..config import without_defaults
from ..errors import UserError
from .files import ensure_dir, fallback_dir, write_atomic, write_fallback, write_with_retries
from .locks import LOCKS_DIR, FolderInUse, RunClaim, Writer, folder_lock  # noqa: F401  (the store's API)
from .record import InvalidRecord, check_record  # noqa: F401

log = logging.getLogger(__name__)
RUNS_DIR, REPLACED_DIR, QUARANTINE_DIR = "runs", "replaced", "quarantine"


class ConfigChanged(UserError):
    """A record on file was made with another config than the writer now asks for."""


class UnusableOutput(UserError):
    """A results folder that cannot be made: a file in its way, a parent without write permission."""


def run_key(task: str, variant: str, seed: int) -> str:
    return f"{task}__{variant}__seed{seed}"


def key_of(run: dict) -> str:
    return run_key(run["task"], run["method"]["variant"], run["seed"])


def result_path(output, run: dict) -> Path:
    return Path(output) / RUNS_DIR / f"{key_of(run)}.json"


def logdir(output, run: dict) -> Path:
    """The run's TensorBoard folder, under tb/runs/ (the report writes tb/report and tb/methods/ beside it, so
    no variant name can clash with theirs): method first, so one method's seeds sit together."""
    return Path(output) / "tb" / "runs" / run["method"]["variant"] / run["task"] / f"seed{run['seed']}"


# ---------------------------------------------------------------------------------------------- the same config

def comparable(run: dict) -> dict:
    """The part of a run config that decides its numbers: runs with equal `comparable` configs compute the same
    result, so a record made with one stands for the other, and a difference anywhere else is drift.

    Left out, because they change how a run executes but not what it computes:
    - `name`: the sweep's name (a config may be renamed, or two sweeps share runs);
    - `data.cache_dir`: where decoded images are cached; the cache is keyed by content;
    - `train.eval_every`: how often accuracy is measured on the way. `train.fit` evaluates the final epoch
      whatever it is, that accuracy is the result, and evaluating draws no random numbers;
    - `train.device`: which device runs it (each record keeps the `device` and `precision` it ran with);
    - `train.compile`: whether torch.compile fused its kernels (each record keeps the mode it ran, `compile`);
      like the device, it changes float rounding, not the computation, and its default `auto` resolves per
      device (records made when the default was false resume under auto);
    the output folder and `--quiet` are not part of a run config at all.
    Keys at their declared default are left out too (config.without_defaults), so that a key declared after
    a result was recorded does not make it drift."""
    plain = json.loads(json.dumps(without_defaults(run), default=str))  # as it reads back from a record
    plain.pop("name", None)
    plain.get("data", {}).pop("cache_dir", None)
    for key in ("eval_every", "device", "compile"):
        plain.get("train", {}).pop(key, None)
    return plain


def same_config(recorded: dict, run: dict) -> bool:
    return comparable(recorded) == comparable(run)


def recipe(run: dict) -> dict:
    """`comparable` without the seed: what a method computes on a task. The report averages the seeds of a
    (task, method), so all of them in one folder must share one recipe."""
    return {k: v for k, v in comparable(run).items() if k != "seed"}


def pair_of(run: dict) -> str:
    """The (task, method variant) whose seeds the report averages."""
    return f"{run['task']}__{run['method']['variant']}"


def fingerprint(run: dict) -> str:
    return hashlib.sha256(json.dumps(recipe(run), sort_keys=True).encode()).hexdigest()[:16]


def differences(recorded: dict, run: dict, limit: int = 3) -> str:
    """'train.lr 0.001 -> 0.5, ...': where two configs differ in what they compute (the seed aside); values as
    the configs hold them, defaults included."""
    out = []
    as_held = lambda cfg: json.loads(json.dumps(cfg, default=str))

    def value(cfg, path):
        for k in path:
            if not isinstance(cfg, dict) or k not in cfg:
                return "<absent>"
            cfg = cfg[k]
        return cfg

    def walk(a, b, path):
        for k in sorted(set(a) | set(b), key=str):
            x, y = a.get(k), b.get(k)
            if isinstance(x, dict) and isinstance(y, dict):
                walk(x, y, path + (k,))
            elif x != y:
                out.append(f"{'.'.join(map(str, path + (k,)))} {value(as_held(recorded), path + (k,))!r} -> "
                           f"{value(as_held(run), path + (k,))!r}")

    walk(recipe(recorded), recipe(run), ())
    return ", ".join(out[:limit]) + (f" and {len(out) - limit} more" if len(out) > limit else "")


def changed_message(output, changed: list) -> str:
    """One line for ConfigChanged: `changed` is [(record, run)] of the records that another config made."""
    return _config_changed_line(output, changed, "were made with another config than this one asks for",
                                lambda record, run: key_of(run),
                                f"use another output folder, or --replace-changed to keep them in "
                                f"{Path(output) / REPLACED_DIR / RUNS_DIR} and make those runs again")


def mixed_message(output, mixed: list) -> str:
    """One line for ConfigChanged: `mixed` is [(record, run)] of records of other seeds of run's (task, method)."""
    return _config_changed_line(output, mixed, "are other seeds of this config's (task, method) pairs, made with "
                                "another config", _record_key,
                                "the report would average them with this one's: use another output folder, or add "
                                "their seeds to this config and use --replace-changed")


def folder_mix_message(output, mixed: list) -> str:
    """One line for ConfigChanged: `mixed` is [(record, config)] as `mixed_recipes` gives them."""
    return _config_changed_line(output, mixed, "were made with another config than the other seeds of their "
                                "(task, method)", _record_key,
                                "the report would average them into one row: make them again with one config "
                                "(sweep --replace-changed), or move them to another folder")


def _record_key(record: dict, run: dict) -> str:
    return run_key(record["task"], record["method"], record["seed"])


def _config_changed_line(output, pairs: list, what: str, example_key, fix: str) -> str:
    """'<n> result(s) in <runs> <what> (e.g. <file>: <differences>); <fix>', the first pair as the example."""
    record, run = pairs[0]
    return (f"{len(pairs)} result(s) in {Path(output) / RUNS_DIR} {what} (e.g. {example_key(record, run)}.json: "
            f"{differences(record['config'], run)}); {fix}")


def other_seeds_of_another_recipe(records: list, runs: list) -> list:
    """[(record, run)]: of `records`, the finished ones of a (task, method) that `runs` make, for a seed they do not
    make, whose recipe differs from the run's (a failure holds no result that the report would average)."""
    keys, by_pair = {key_of(r) for r in runs}, {pair_of(r): r for r in runs}
    mixed = []
    for rec in records:
        run = by_pair.get(f"{rec['task']}__{rec['method']}")
        if run is not None and rec["status"] == "ok" and \
                run_key(rec["task"], rec["method"], rec["seed"]) not in keys and recipe(rec["config"]) != recipe(run):
            mixed.append((rec, run))
    return mixed


def mixed_recipes(records: list) -> list:
    """[(record, config)]: the finished records made with another recipe than most seeds of their (task, method)
    (ties: the recipe read first), each with a config of those seeds. Such records are kept out of a folder by
    `sweep` (mixed_message), but a folder can still get them by hand or from two sweeps' copies."""
    by_pair = {}
    for rec in records:
        if rec["status"] == "ok":
            groups = by_pair.setdefault((rec["task"], rec["method"]), {})
            groups.setdefault(json.dumps(recipe(rec["config"]), sort_keys=True), []).append(rec)
    mixed = []
    for groups in by_pair.values():
        most = max(groups.values(), key=len)
        mixed += [(rec, most[0]["config"]) for group in groups.values() if group is not most for rec in group]
    return mixed


def make_output(output) -> Path:
    """The results folder and its lock folder, made where missing (a writer needs both); UnusableOutput, one
    line naming the folder, where they cannot be."""
    try:
        ensure_dir(Path(output) / LOCKS_DIR)
    except OSError as e:
        raise UnusableOutput(f"output folder {output} cannot be made ({e.strerror or e}: {e.filename}); set output "
                             "to a folder you can write, e.g. --set output=results/<name>") from None
    return Path(output)


# ------------------------------------------------------------------------------------------- what a sweep does

def decide(record: Optional[dict], run: dict, retry_failed: bool = False) -> str:
    """What a sweep does with `run`, given its record on file (None: none), as one word:
    - 'new': no record; made;
    - 'done': a finished result of the same config; kept;
    - 'failed': a failure of the same config; kept (the sweep says so), made again with `retry_failed` ('retry');
    - 'redo': a failure under another config (a mistyped data root, since fixed); made: a failure holds no
      result, so no config clashes with it, and it is replaced without a copy;
    - 'changed': a finished result of another config; refused (ConfigChanged) unless --replace-changed."""
    if record is None:
        return "new"
    same = same_config(record["config"], run)
    if record["status"] == "ok":
        return "done" if same else "changed"
    if not same:
        return "redo"
    return "retry" if retry_failed else "failed"


MADE = ("new", "retry", "redo")  # and 'changed' with --replace-changed


def to_make(output, runs: list, retry_failed: bool = False, replace_changed: bool = False) -> list:
    """The runs of `runs` a sweep would make now, from the records on file, read only (`peek`)."""
    made = MADE + ("changed",) * replace_changed
    return [run for run in runs if decide(peek(output, run), run, retry_failed) in made]


def writer(output, name: str, runs: list) -> Writer:
    """The folder registration for writing `runs` (`with store.writer(...)`); raises UnusableOutput when the
    folder cannot be made, FolderInUse on entering when a live writer makes any of their (task, method) pairs
    with another recipe."""
    make_output(output)
    return Writer(output, name, {pair_of(r): fingerprint(r) for r in runs})


def claim(output, run: dict) -> RunClaim:
    """`with store.claim(output, run) as held:` held is False when another live process is making the run."""
    return RunClaim(output, key_of(run))


# ---------------------------------------------------------------------------------------------------- reading

def read_result(path, key: Optional[str] = None) -> dict:
    """The valid record in `path` (of the run `key`, when given); raises InvalidRecord naming the file."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as e:  # ValueError: JSON and Unicode decoding errors
        raise InvalidRecord(f"{path}: not a readable JSON file ({e})") from None
    check_record(record, str(path))
    if key is not None and run_key(record["task"], record["method"], record["seed"]) != key:
        raise InvalidRecord(f"{path}: holds the record of {run_key(record['task'], record['method'], record['seed'])}, "
                            f"not of {key}")
    return record


def result_paths(output) -> list[Path]:
    return sorted(Path(output).glob(f"{RUNS_DIR}/*.json"))


def _numbered(folder: Path, name: str) -> Path:
    target, n = folder / name, 1
    while target.exists():
        target, n = folder / f"{Path(name).stem}.{n}.json", n + 1
    return target


def quarantine(path, output, reason: str, claimed: bool = False) -> Optional[Path]:
    """Move `path`, a file in runs/ that is not a valid record, into <output>/quarantine/runs/ (kept for a look,
    never read as a result), warning with `reason`; returns where it went, or None when it could not be moved
    (a read-only folder, a writer at work). `claimed`: the caller holds the run's claim."""
    path = Path(path)
    try:
        run_claim = None if claimed else RunClaim(output, path.stem)
        if run_claim is not None and not run_claim.acquire():
            log.warning(f"{reason}; left in place: another process is writing {path.name} now")
            return None
    except OSError as e:  # a read-only results folder: no lock file can be made
        log.warning(f"{reason}; could not move it aside ({e}); it is skipped")
        return None
    try:
        try:
            read_result(path, key=path.stem)
            return None  # a writer replaced it with a valid record meanwhile
        except InvalidRecord:
            pass
        target = _numbered(ensure_dir(Path(output) / QUARANTINE_DIR / RUNS_DIR), path.name)
        path.replace(target)
    except OSError as e:
        log.warning(f"{reason}; could not move it aside ({e}); it is skipped")
        return None
    finally:
        if run_claim is not None:
            run_claim.release()
    log.warning(f"{reason}; moved to {target}")
    return target


def _load(path: Path, output, claimed: bool = False) -> Optional[dict]:
    try:
        return read_result(path, key=path.stem)
    except InvalidRecord as e:
        quarantine(path, output, str(e), claimed)
        return None


def peek(output, run: dict) -> Optional[dict]:
    """The valid record of `run` on file, or None, read only: a bad file is left for a writer to quarantine (what
    a dry run, which makes nothing, reads)."""
    try:
        return read_result(result_path(output, run), key=key_of(run))
    except InvalidRecord:  # a missing file too
        return None


def peek_all(output) -> list[dict]:
    """Every valid record under <output>/runs/, read only (see `peek`)."""
    out = []
    for path in result_paths(output):
        try:
            out.append(read_result(path, key=path.stem))
        except InvalidRecord:
            pass
    return out


def load_all(output) -> list[dict]:
    """Every valid record under <output>/runs/ (none: []). A file that is not one is quarantined with a warning
    that names it; never raises for a bad file."""
    return [r for r in (_load(p, output) for p in result_paths(output)) if r is not None]


def existing(output, run: dict, claimed: bool = False) -> Optional[dict]:
    """The valid record of `run` on file, or None (a bad file in its place is quarantined)."""
    path = result_path(output, run)
    return _load(path, output, claimed) if path.exists() else None


def stamp(output, run: dict) -> Optional[tuple]:
    """Identifies the file version of run's record (None: no file); a writer that replaced it changes it."""
    try:
        st = result_path(output, run).stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_mtime_ns, st.st_size


# ---------------------------------------------------------------------------------------------------- writing

@dataclass(frozen=True)
class Pending:
    """A run to make, as the sweep planned it: `seen` is the stamp of its record then (another process that
    made the run meanwhile changed it), `replace` says the record on file has another config."""
    run: dict
    seen: Optional[tuple] = None
    replace: bool = False

    @property
    def key(self) -> str:
        return key_of(self.run)


@dataclass(frozen=True)
class Saved:
    """Where a record went: the store (`in_store`), or, when the store could not take it, a fallback file
    named in a warning (None: not even that; the warning holds the record itself)."""
    path: Optional[Path]
    in_store: bool


def save(output, run: dict, result: dict, replace: bool = False) -> Saved:
    """`result` (a valid record: InvalidRecord otherwise) recorded as run's result. A finished record on file made
    with another config raises ConfigChanged, unless `replace`: then a copy of it is kept in replaced/runs/ before
    it is replaced. A failure never replaces a finished result of the same config, and is replaced by any record
    (it holds no result). Write errors are retried, then the record goes to a fallback file: nothing but
    InvalidRecord and ConfigChanged raises. Call it holding the run's claim when other processes may write the
    folder."""
    key = key_of(run)
    check_record(result, f"the result of {key}")
    data = json.dumps(result, indent=2, default=str).encode()
    path = result_path(output, run)
    old = existing(output, run, claimed=True)
    what = decide(old, run)
    if what == "changed" and not replace:
        raise ConfigChanged(changed_message(output, [(old, run)]))
    if what == "done" and result["status"] != "ok":
        return _keep_elsewhere(output, key, data, f"{path} holds a finished result of the same config, kept; this "
                                             f"run failed ({result['error']})")
    try:
        if what == "changed":
            keep_copy(path, output)
        write_with_retries(path, data)
    except OSError as e:
        return _keep_elsewhere(output, key, data, f"could not write {path} ({e})")
    return Saved(path, True)


def keep_copy(path: Path, output) -> Path:
    """A durable copy of a record about to be replaced, in <output>/replaced/runs/ (kept, reportable), never
    overwriting an earlier one; an identical copy already there is reused."""
    folder = ensure_dir(Path(output) / REPLACED_DIR / RUNS_DIR)
    data = path.read_bytes()
    for earlier in [*folder.glob(path.name), *folder.glob(f"{path.stem}.*.json")]:
        if earlier.read_bytes() == data:  # an interrupted replacement kept it already
            return earlier
    return write_atomic(_numbered(folder, path.name), data)


def _keep_elsewhere(output, key: str, data: bytes, why: str) -> Saved:
    try:
        where = write_fallback(f"{Path(output).resolve().name}__{key}", data)
    except OSError as e:
        log.warning(f"{why}; writing it to {fallback_dir()} failed too ({e}); the record, so it is not lost:\n"
                    f"{data.decode()}")
        return Saved(None, False)
    log.warning(f"{why}; the record is in {where} instead (move it to {Path(output) / RUNS_DIR / (key + '.json')} "
                "to have it count)")
    return Saved(where, False)


def write_json(path, obj) -> Path:
    """Any JSON file of the results folder, atomically and durably."""
    return write_atomic(path, json.dumps(obj, indent=2, default=str).encode())


def write_text(path, text: str) -> Path:
    return write_atomic(path, text.encode())
