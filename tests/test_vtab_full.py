"""perf/vtab_full.py: VTAB-1k generated at its real sizes, swept, and the breakdown of where the time went."""
import json
import os
import re
from pathlib import Path

import pytest

from aurora_bench.data import list_split
from aurora_bench.data.raw import DataError
from aurora_bench.data.tasks import VTAB1K, VTAB1K_TEST_SIZES
from aurora_bench.perf import vtab_full
from aurora_bench.perf.sweep_breakdown import breakdown, idle, markdown
from aurora_bench.perf.vtab_synthetic import generate, task_sizes

from fixtures import TINY_MODEL

# ../shared beside the checkout (AURORA_VISION_SHARED names it elsewhere, e.g. for a git worktree)
SHARED = Path(os.environ.get("AURORA_VISION_SHARED", Path(__file__).resolve().parents[2] / "shared"))
DOCS = SHARED / "docs" / "BENCHMARKS.md"

# transcribed apart from data/tasks.py: BENCHMARKS.md's class counts, the VTAB paper's test-set sizes
DOC_CLASSES = {"cifar": 100, "caltech101": 102, "dtd": 47, "oxford_flowers102": 102, "oxford_iiit_pet": 37,
               "svhn": 10, "sun397": 397, "patch_camelyon": 2, "eurosat": 10, "resisc45": 45,
               "diabetic_retinopathy": 5, "clevr_count": 8, "clevr_dist": 6, "dmlab": 6, "kitti": 4,
               "dsprites_loc": 16, "dsprites_ori": 16, "smallnorb_azi": 18, "smallnorb_ele": 9}
PAPER_TEST = {"cifar": 10000, "caltech101": 6084, "dtd": 1880, "oxford_flowers102": 6149, "oxford_iiit_pet": 3669,
              "svhn": 26032, "sun397": 21750, "patch_camelyon": 32768, "eurosat": 5400, "resisc45": 6300,
              "diabetic_retinopathy": 42670, "clevr_count": 15000, "clevr_dist": 15000, "dmlab": 22735,
              "kitti": 711, "dsprites_loc": 73728, "dsprites_ori": 73728, "smallnorb_azi": 12150,
              "smallnorb_ele": 12150}


def test_the_task_table_holds_the_real_class_counts_and_test_sizes():
    assert {t: i.num_classes for t, i in VTAB1K.items()} == DOC_CLASSES
    assert VTAB1K_TEST_SIZES == PAPER_TEST and sum(VTAB1K_TEST_SIZES.values()) == 387_904
    assert all(task_sizes(t) == {"train800": 800, "val200": 200, "test": n} for t, n in PAPER_TEST.items())


@pytest.mark.skipif(not DOCS.is_file(), reason="../shared/docs/BENCHMARKS.md is not beside this checkout")
def test_the_task_table_matches_the_docs():
    text = DOCS.read_text().split("On-disk layout")[0]
    found = {name: int(n) for name, n in re.findall(r"(\w+) \((?:[^,()]*, )?(\d+)\)", text)}
    assert {t: found[t] for t in VTAB1K} == {t: i.num_classes for t, i in VTAB1K.items()}


def test_generated_tasks_have_the_real_class_counts_and_scaled_sizes(tmp_path):
    tasks = ["sun397", "kitti", "dsprites_loc"]
    made = generate(tmp_path, tasks, scale=0.002, px=8, processes=2)
    assert set(made["tasks"]) == set(tasks) and made["bytes"] > 0
    for task in tasks:
        sizes = task_sizes(task, 0.002)
        assert sizes["test"] == max(2, round(VTAB1K_TEST_SIZES[task] * 0.002))
        for split, n in [*sizes.items(), ("train800val200", sizes["train800"] + sizes["val200"])]:
            raw = list_split({"source": "vtab", "root": str(tmp_path)}, task, split)
            assert raw.num_classes == DOC_CLASSES[task] and len(raw.items) == n
        assert len((tmp_path / task / "classes.txt").read_text().split()) == DOC_CLASSES[task]
    assert generate(tmp_path, tasks, scale=0.002, px=8)["images"] == 0  # done: nothing made again
    with pytest.raises(DataError, match="another --data folder"):
        generate(tmp_path, ["kitti"], scale=0.004, px=8)
    with pytest.raises(DataError, match="not VTAB-1k tasks"):
        generate(tmp_path, ["cifar10"], scale=0.004)


def test_idle_time_of_a_gpu_between_before_and_after_its_runs():
    spans = [(12, 15), (14, 18), (20, 25), (40, 45)]  # two overlap (two workers); the last in segment 2
    got = idle(spans, [[10, 30], [35, 50], [60, 70]])
    assert got == {"busy": 6 + 5 + 5, "idle_before": 2 + 5 + 10, "idle_between": 2, "idle_after": 5 + 5}
    assert sum(got.values()) == 20 + 15 + 10


def test_a_failed_run_is_busy_time_of_its_gpu_not_idle():
    """GPU 0: an ok run 10-20 s, then one that fails 20-35 s; GPU 1: only a failure, 12-18 s; a failure from
    before records carried timing is listed but not timed. Segment 5-40 s."""
    def rec(status, method, gpu, start, end, **timing):
        r = {"status": status, "task": "t", "method": method, "num_classes": 2, "num_train": 8, "num_eval": 4,
             "timing": {"wall_start": start, "wall_end": end, "host": "h", "gpu": gpu, **timing}}
        return r if status == "ok" else {**r, "error": f"{method} broke"}
    records = [rec("ok", "m", "0", 10, 20, train_steady_seconds=6.0, eval_seconds=1.0),
               rec("failed", "f", "0", 20, 35), rec("failed", "g", "1", 12, 18),
               {"status": "failed", "task": "t", "method": "old", "error": "before timing"}]
    b = breakdown(records, [[5, 40]])
    g0, g1 = b["gpus"]["h:0"], b["gpus"]["h:1"]
    assert (g0["runs"], g0["in_runs"], g0["train"], g0["eval"], g0["other"]) == (1, 10, 6, 1, 3)  # the ok run's phases
    assert (g0["failed_runs"], g0["busy"], g0["idle_before"], g0["idle_between"], g0["idle_after"]) == (15, 25, 5, 0, 5)
    assert (g1["runs"], g1["failed_runs"], g1["busy"], g1["idle_before"], g1["idle_after"]) == (0, 6, 6, 7, 22)
    assert (b["total"]["failed_runs"], b["total"]["busy"]) == (21, 31) and len(b["failed"]) == 3
    text = markdown(b)
    assert "| other in runs | failed runs | busy | idle before |" in text
    assert "| h:0 | 1 | 10.0 | 6.0 | 1.0 | 0.0 | 0.0 | 0.0 | 0.0 | 0.0 | 3.0 | 15.0 | 25.0 | 5.0 | 0.0 | 5.0 |" in text


def _tiny_args(tmp_path, *extra):
    kwargs = json.dumps(TINY_MODEL["kwargs"])
    return ["--tasks", "dtd", "kitti", "--scale", "0.004", "--px", "16", "--data", str(tmp_path / "data"),
            "--out", str(tmp_path / "out"), "--model", TINY_MODEL["name"], "--epochs", "1", "--quiet", *extra,
            "--set", "model.image_size=16", f"model.kwargs={kwargs}", "train.device=cpu", "train.batch_size=4",
            "train.warmup_epochs=0"]


def _tiny(tmp_path, *extra):
    return vtab_full.main(_tiny_args(tmp_path, *extra))


def _adds_up(b):
    for g in [*b["gpus"].values(), b["total"]]:
        columns = ("train", "eval", "merge_eval", "data_load", "capture_compile", "model_build", "setup", "other")
        assert sum(g[c] for c in columns) == pytest.approx(g["in_runs"])
        assert all(g[c] >= 0 for c in columns)  # "other" too: the timed phases fit in the runs' spans
    for g in b["gpus"].values():
        assert sum(g[k] for k in ("busy", "idle_before", "idle_between", "idle_after")) == pytest.approx(
            b["wall_seconds"])
    assert b["total"]["runs"] == sum(t["runs"] for t in b["tasks"].values())


def test_vtab_full_sweeps_the_tasks_and_writes_a_breakdown_that_adds_up(tmp_path):
    assert _tiny(tmp_path) == 0
    b = json.loads((tmp_path / "out" / "breakdown.json").read_text())
    assert sorted(b["tasks"]) == ["dtd", "kitti"] and not b["failed"] and b["total"]["runs"] == 4
    for task, t in b["tasks"].items():
        assert t["methods"] == ["aurora", "lora"] and t["num_classes"] == DOC_CLASSES[task]
        assert t["num_eval"] == task_sizes(task, 0.004)["test"] and t["evals"] == 2  # once per run
        # no split decoded twice: the second method finds the cache; a later task's splits may have been decoded
        # ahead while an earlier run trained (no run then decodes them)
        assert t["decoded"] + t["cache_hits"] == 4 and t["decoded"] in (0, 2)
    _adds_up(b)
    assert b["total"]["busy"] <= b["wall_seconds"] and b["epochs"] == 1
    assert "| dtd | 47 |" in (tmp_path / "out" / "breakdown.md").read_text()
    # a second call resumes: nothing to make, a second segment, the same runs
    assert _tiny(tmp_path) == 0
    again = json.loads((tmp_path / "out" / "breakdown.json").read_text())
    assert again["counts"]["skipped"] == 4 and len(again["segments"]) == 2 and again["total"]["runs"] == 4
    _adds_up(again)


def test_drop_cache_deletes_the_finished_tasks_decoded_splits_and_a_resume_needs_none(tmp_path):
    """--drop-cache: a disk that cannot hold every task's decoded splits (57 GiB at real size) keeps only the
    tasks still to run; a later call on the same tasks makes nothing and decodes nothing."""
    cache = tmp_path / "data" / "16px-x0.004" / "cache"
    assert _tiny(tmp_path, "--drop-cache") == 0
    assert not list(cache.glob("*.npz"))  # dtd's and kitti's train and test splits were there
    b = json.loads((tmp_path / "out" / "breakdown.json").read_text())
    assert b["cache_dropped"]["after"]["tasks"] == ["dtd", "kitti"] and b["cache_dropped"]["after"]["files"] == 4
    assert _tiny(tmp_path, "--drop-cache") == 0
    again = json.loads((tmp_path / "out" / "breakdown.json").read_text())
    assert again["counts"]["skipped"] == 4 and not list(cache.glob("*.npz"))


def test_drop_cache_at_a_calls_start_deletes_what_an_earlier_call_cut_off_left(tmp_path):
    cache = tmp_path / "data" / "16px-x0.004" / "cache"
    assert _tiny(tmp_path) == 0  # as if cut off before its drop: dtd's and kitti's entries stay
    assert len(list(cache.glob("*.npz"))) == 4
    assert _tiny(tmp_path, "--drop-cache", "--tasks", "dtd") == 0  # kitti is not this call's
    b = json.loads((tmp_path / "out" / "breakdown.json").read_text())
    assert b["cache_dropped"]["before"]["tasks"] == ["dtd", "kitti"] and not list(cache.glob("*.npz"))


def test_drop_cache_keeps_a_task_with_a_run_left_to_make(tmp_path):
    assert _tiny(tmp_path) == 0
    cache = tmp_path / "data" / "16px-x0.004" / "cache"
    assert len(list(cache.glob("*.npz"))) == 4
    cfg = vtab_full.sweep_config(vtab_full.parse_args(_tiny_args(tmp_path)), cache.parent, tmp_path / "out" / "sweep")
    kitti = list((tmp_path / "out" / "sweep" / "runs").glob("kitti__lora*.json"))
    assert len(kitti) == 1
    kitti[0].unlink()  # as if its call had been cut off before that run
    dropped = vtab_full.drop_cache(cfg)
    assert dropped["tasks"] == ["dtd"] and dropped["files"] == 2
    assert len(list(cache.glob("*.npz"))) == 2  # kitti's, for the run it still has to make
