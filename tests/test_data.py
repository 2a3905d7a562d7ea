import errno
import os
import shutil
import socket
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from aurora_bench.data import (DataError, DeviceSplit, DeviceTransform, RawSplit, check_split, list_split, load_split,
                               lookup)
from aurora_bench.data import cache as cache_mod
from aurora_bench.data.keys import content_key
from aurora_bench.data.pixels import to_rgb8
from aurora_bench.run.inputs import decoded_splits, transform_for

from fixtures import fgvc_task, image_folder_task, vtab_task, write_gray16, write_image


def vtab(root):
    return {"source": "vtab", "root": str(root)}


def test_vtab_folder_lists_and_decodes(tmp_path):
    vtab_task(tmp_path, "mytask", num_classes=3)
    raw = list_split(vtab(tmp_path), "mytask", "train800val200")
    assert len(raw.items) == 18 and raw.num_classes == 3
    images, labels = load_split(raw, 16, tmp_path / "cache")
    assert images.shape == (18, 12, 12, 3) and images.dtype == np.uint8  # one size: kept as is
    assert labels.tolist() == [i % 3 for i in range(12)] + [i % 3 for i in range(6)]


def test_vtab_aliases_resolve_to_noah_folders(tmp_path):
    vtab_task(tmp_path, "oxford_iiit_pet", num_classes=37, per_split={"train800": 37, "test": 37})
    assert lookup("vtab", "pets").name == "oxford_iiit_pet"
    assert list_split(vtab(tmp_path), "oxford_pet", "train800").num_classes == 37


def test_vtab_all_19_tasks_known():
    from aurora_bench.data import VTAB1K
    assert len(VTAB1K) == 19
    assert sum(t.num_classes for t in VTAB1K.values()) == 100 + 102 + 47 + 102 + 37 + 10 + 397 + 2 + 10 + 45 + 5 \
        + 8 + 6 + 6 + 4 + 16 + 16 + 18 + 9


def test_vtab_missing_task_names_what_is_there(tmp_path):
    vtab_task(tmp_path, "mytask")
    with pytest.raises(DataError, match=r"no folder for task 'svhn'.*folders there: mytask"):
        list_split(vtab(tmp_path), "svhn", "test")


def test_vtab_missing_split_file(tmp_path):
    vtab_task(tmp_path, "mytask")
    with pytest.raises(DataError, match=r"train1000.txt is missing \(split 'train1000' of task 'mytask'\); did you "
                                        r"mean 'train800'\? \(split files there: classes, test, train800, "):
        list_split(vtab(tmp_path), "mytask", "train1000")


def test_vtab_malformed_line(tmp_path):
    d = vtab_task(tmp_path, "mytask")
    (d / "test.txt").write_text("images/test/000000.jpg 0\nimages/test/000001.jpg\n")
    with pytest.raises(DataError, match=r"test.txt line 2"):
        list_split(vtab(tmp_path), "mytask", "test")


def test_vtab_label_out_of_range_names_file(tmp_path):
    d = vtab_task(tmp_path, "mytask", num_classes=3)
    (d / "test.txt").write_text("images/test/000000.jpg 0\nimages/test/000001.jpg 7\n")
    with pytest.raises(DataError, match=r"label 7 out of range for 3 classes at .*test.txt \(.*000001.jpg\)"):
        list_split(vtab(tmp_path), "mytask", "test")


def test_vtab_class_count_disagreeing_with_task_table(tmp_path):
    vtab_task(tmp_path, "svhn", num_classes=3)  # SVHN has 10 classes
    with pytest.raises(DataError, match=r"class counts for task 'svhn' disagree"):
        list_split(vtab(tmp_path), "svhn", "test")


def test_vtab_missing_and_corrupt_images(tmp_path):
    d = vtab_task(tmp_path, "mytask")
    (d / "images/test/000002.jpg").unlink()
    with pytest.raises(DataError, match=r"1 image\(s\) listed in .*test.txt are missing, e.g. .*000002.jpg"):
        list_split(vtab(tmp_path), "mytask", "test")
    write_image(d / "images/test/000002.jpg", 0)
    (d / "images/test/000003.jpg").write_bytes(b"not a jpeg")
    raw = list_split(vtab(tmp_path), "mytask", "test")
    with pytest.raises(DataError, match=r"cannot read image .*000003.jpg"):
        load_split(raw, 16, None)


def test_vtab_missing_root_says_how_to_set_it():
    with pytest.raises(DataError, match=r"needs data.root"):
        list_split({"source": "vtab", "root": None}, "cifar", "test")
    with pytest.raises(DataError, match="unknown data.source 'tfds'"):
        list_split({"source": "tfds"}, "cifar", "test")


def _made_tasks(root: Path) -> dict:
    """Per source: (a data config over a task made under `root`, the task, one of its splits, a mistyped task and
    the name the check suggests for it (None: the source takes any task name), a split it lacks)."""
    vtab_task(root / "vtab", "mytask")
    fgvc_task(root / "fgvc", "mybirds", "images")
    image_folder_task(root / "folder", "own")
    (root / "tv").mkdir()
    # what a save_to_disk folder's check reads: its split list (no arrow file is opened)
    (root / "hf").mkdir()
    (root / "hf" / "dataset_dict.json").write_text('{"splits": ["train", "validation", "test"]}')
    return {
        "vtab": ({"source": "vtab", "root": str(root / "vtab")}, "mytask", "test", ("mytsk", "mytask"), "tset"),
        "fgvc": ({"source": "fgvc", "root": str(root / "fgvc")}, "mybirds", "trainval", ("mybird", "mybirds"), "tset"),
        "folder": ({"source": "folder", "root": str(root / "folder")}, "own", "train", ("onw", "own"), "tset"),
        "torchvision": ({"source": "torchvision", "root": str(root / "tv")}, "cifar10", "val", ("cifar1O", "cifar10"),
                        "tset"),
        "hf": ({"source": "hf", "path": str(root / "hf")}, "mytask", "train800val200", None, "tset"),
        "digits": ({"source": "digits"}, "digits_5_9", "test", None, "val"),  # val only with data.val_size
    }


@pytest.mark.parametrize("source", ["vtab", "fgvc", "folder", "torchvision", "hf", "digits"])
def test_each_source_says_whether_a_task_and_split_exist(tmp_path, source, monkeypatch):
    """What a sweep, tune or run checks before making any run: cheap (no image is read) and naming what is
    missing, with the nearest name it knows for a mistyped task."""
    cfg, task, split, mistyped, missing_split = _made_tasks(tmp_path)[source]
    monkeypatch.setattr(Image, "open", lambda *a, **k: pytest.fail("the check read an image"))
    check_split(cfg, task, split)
    if mistyped:
        typo, meant = mistyped
        with pytest.raises(DataError, match=rf"task '{typo}'.*did you mean '{meant}'"):
            check_split(cfg, typo, split)
    with pytest.raises(DataError, match=rf"'{missing_split}'"):
        check_split(cfg, task, missing_split)
    if "root" in cfg:
        with pytest.raises(DataError, match=rf"data.root {tmp_path / 'nowhere'} does not exist"):
            check_split({**cfg, "root": str(tmp_path / "nowhere")}, task, split)


def test_a_hub_dataset_is_not_looked_up_at_plan_time(monkeypatch):
    """Whether a hub id exists needs the network: the plan does not wait on it (its runs fail, saying why)."""
    datasets = pytest.importorskip("datasets")
    monkeypatch.setattr(datasets, "load_dataset", lambda *a, **k: pytest.fail("the check went to the hub"))
    check_split({"source": "hf", "path": "someone/vtab-{task}"}, "dtd", "test")
    with pytest.raises(DataError, match=r"data.path /no/such/folder \(task 'dtd'\) is not a folder"):
        check_split({"source": "hf", "path": "/no/such/folder"}, "dtd", "test")


def test_the_torchvision_check_knows_the_tasks_the_listing_makes():
    from aurora_bench.data.torchvision_datasets import TASKS, _tv_datasets
    assert set(TASKS) == set(_tv_datasets("unused", download=False))


def test_fgvc_json_layout(tmp_path):
    fgvc_task(tmp_path, "mybirds", "images", num_classes=3)
    cfg = {"source": "fgvc", "root": str(tmp_path), "image_dir": "images"}
    raw = list_split(cfg, "mybirds", "trainval")
    assert len(raw.items) == 12 and raw.num_classes == 3
    assert sorted(set(raw.labels.tolist())) == [0, 1, 2]  # 1-based ids -> 0..C-1
    images, _ = load_split(raw, 16, None)
    assert images.shape == (12, 12, 12, 3)


def test_fgvc_known_task_checks_class_count(tmp_path):
    fgvc_task(tmp_path, "CUB_200_2011", "images", num_classes=3)
    with pytest.raises(DataError, match="disagree"):
        list_split({"source": "fgvc", "root": str(tmp_path)}, "cub", "train")


def test_fgvc_missing_json(tmp_path):
    (tmp_path / "CUB_200_2011").mkdir()
    with pytest.raises(DataError, match=r"CUB_200_2011/train.json is missing"):
        list_split({"source": "fgvc", "root": str(tmp_path)}, "cub", "train")
    with pytest.raises(DataError, match=r"no folder for task 'nabird' under .*; did you mean 'nabirds'\? "
                                        r"\(folders there: CUB_200_2011\)"):
        list_split({"source": "fgvc", "root": str(tmp_path)}, "nabird", "train")


def test_image_folder(tmp_path):
    image_folder_task(tmp_path, "own", classes=("cat", "dog"))
    raw = list_split({"source": "folder", "root": str(tmp_path)}, "own", "train")
    assert raw.num_classes == 2 and raw.labels.tolist() == [0, 0, 0, 1, 1, 1]
    with pytest.raises(DataError, match=r"own/val is missing"):
        list_split({"source": "folder", "root": str(tmp_path)}, "own", "val")


def test_hf_dataset_from_local_folder(tmp_path):
    datasets = pytest.importorskip("datasets")
    rng = np.random.default_rng(0)

    def split(n):
        imgs = [Image.fromarray(rng.integers(0, 255, (10, 10, 3), dtype=np.uint8)) for _ in range(n)]
        return datasets.Dataset.from_dict({"img": imgs, "label": [i % 2 for i in range(n)]}).cast_column(
            "img", datasets.Image())

    datasets.DatasetDict({"train": split(4), "validation": split(2), "test": split(3)}).save_to_disk(
        str(tmp_path / "hf"))
    cfg = {"source": "hf", "path": str(tmp_path / "hf"), "num_classes": 2}
    raw = list_split(cfg, "mytask", "train800val200")
    assert len(raw.items) == 6
    images, labels = load_split(raw, 16, tmp_path / "cache")
    assert images.shape == (6, 10, 10, 3) and labels.tolist() == [0, 1, 0, 1, 0, 1]
    with pytest.raises(DataError, match=r"no column 'image'"):
        list_split({**cfg, "image_column": "image"}, "mytask", "test")


def test_torchvision_paper_protocol_splits_from_pool(tmp_path):
    """EuroSAT as torchvision lays it out (<root>/eurosat/2750/<class>/*.jpg), split by FourierFT's rule."""
    for c in ("AnnualCrop", "Forest"):
        for i in range(5):
            write_image(tmp_path / "eurosat" / "2750" / c / f"{c}_{i}.jpg", i + (10 if c == "Forest" else 0))
    cfg = {"source": "torchvision", "root": str(tmp_path), "split_sizes": {"eurosat": [6, 2, 2]}}
    sizes = {s: len(list_split(cfg, "eurosat", s).items) for s in ("train", "val", "test")}
    assert sizes == {"train": 6, "val": 2, "test": 2}
    all_items = sum((list_split(cfg, "eurosat", s).items for s in ("train", "val", "test")), [])
    assert sorted(all_items) == list(range(10))  # disjoint, covering the pool
    with pytest.raises(DataError, match="need 20 images"):
        list_split({**cfg, "split_sizes": {"eurosat": [10, 5, 5]}}, "eurosat", "test")


def test_digits_splits_are_disjoint_and_stratified():
    cfg = {"source": "digits", "classes": [5, 6, 7], "train_size": 30, "val_size": 30}
    splits = {s: list_split(cfg, "d", s) for s in ("train", "val", "test")}
    assert [len(splits[s].items) for s in ("train", "val")] == [30, 30]
    assert np.bincount(splits["train"].labels).tolist() == [10, 10, 10]
    assert splits["train"].num_classes == 3


def test_a_split_being_decoded_is_waited_for_not_decoded_again(tmp_path):
    """A thread (as a worker's prefetch is) decodes a slow split; the main thread asks for it mid-decode, waits at
    the split's lock and reads what the thread wrote: every image decoded once, the same arrays."""
    import threading

    from aurora_bench.data.cache import fetch_split
    from parallel_runners import slow_split
    started, log, got = threading.Event(), tmp_path / "decoded.log", {}
    raw = slow_split(log, started)
    thread = threading.Thread(target=lambda: got.update(zip(("images", "labels", "origin"),
                                                           fetch_split(raw, 8, tmp_path / "cache"))))
    thread.start()
    assert started.wait(10)
    images, _, origin = fetch_split(slow_split(log), 8, tmp_path / "cache")
    thread.join()
    assert (got["origin"], origin) == ("decoded", "hit") and np.array_equal(images, got["images"])
    assert sorted(log.read_text().split("\n")[:-1], key=lambda line: int(line.split()[1])) == \
        [f"{os.getpid()} {i}" for i in range(6)]


@pytest.mark.slow  # two spawned processes
def test_two_processes_needing_one_split_decode_it_once(tmp_path):
    import multiprocessing as mp

    import parallel_runners
    ctx = mp.get_context("spawn")
    barrier, results = ctx.Barrier(2), ctx.Queue()
    procs = [ctx.Process(target=parallel_runners.fetch_slow_split, args=(str(tmp_path), barrier, results))
             for _ in range(2)]
    for p in procs:
        p.start()
    got = [results.get(timeout=120) for _ in procs]
    for p in procs:
        p.join(30)
    assert sorted(origin for origin, _ in got) == ["decoded", "hit"] and got[0][1] == got[1][1]
    lines = (tmp_path / "decoded.log").read_text().split()
    assert len(lines) == 12 and len(set(lines[0::2])) == 1  # six images, all decoded by one process


def test_cache_decodes_once(tmp_path, monkeypatch):
    vtab_task(tmp_path, "mytask")
    raw = list_split(vtab(tmp_path), "mytask", "test")
    first, _ = load_split(raw, 16, tmp_path / "cache")
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1
    monkeypatch.setattr(cache_mod, "decode", lambda *a, **k: pytest.fail("decoded twice"))
    again, _ = load_split(raw, 16, tmp_path / "cache")
    assert np.array_equal(first, again)


def test_mixed_sizes_are_resized_once(tmp_path):
    d = vtab_task(tmp_path, "mytask")
    write_image(d / "images/test/000001.jpg", 5, size=(20, 14))
    images, _ = load_split(list_split(vtab(tmp_path), "mytask", "test"), 16, None)
    assert images.shape == (9, 16, 16, 3)


def test_device_transform_resizes_normalises_and_flips():
    x = torch.arange(2 * 3 * 4 * 4, dtype=torch.uint8).view(2, 3, 4, 4)
    t = DeviceTransform(8, mean=(0.5,) * 3, std=(0.5,) * 3, hflip=True)
    out = t(x)
    assert out.shape == (2, 3, 8, 8) and out.dtype == torch.float32
    t_same = DeviceTransform(4, mean=(0.5,) * 3, std=(0.5,) * 3)
    assert torch.allclose(t_same(x), x.float() / 127.5 - 1)
    flipped = DeviceTransform(4, (0.5,) * 3, (0.5,) * 3, hflip=True)(x, train=True, generator=torch.Generator().manual_seed(0))
    assert all(torch.equal(f, t_same(x)[i]) or torch.equal(f, t_same(x)[i].flip(-1)) for i, f in enumerate(flipped))
    cropped = DeviceTransform(4, (0.5,) * 3, (0.5,) * 3, crop_scale=(0.5, 1.0))(x, train=True)
    assert cropped.shape == (2, 3, 4, 4)


def test_device_split_batches_cover_everything_once():
    s = DeviceSplit(np.zeros((10, 4, 4, 3), np.uint8), np.arange(10), "cpu")
    seen = torch.cat([y for _, y in s.batches(3, generator=torch.Generator().manual_seed(0))])
    assert sorted(seen.tolist()) == list(range(10))
    assert [len(y) for _, y in s.batches(3)] == [3, 3, 3, 1]


# --- the decode cache keys content, not names -------------------------------------------------------------

def test_cache_decodes_rewritten_images_again(tmp_path):
    d = vtab_task(tmp_path, "mytask")
    raw = list_split(vtab(tmp_path), "mytask", "test")
    first, _ = load_split(raw, 16, tmp_path / "cache")
    assert first.max() > 0
    for p in (d / "images/test").glob("*.jpg"):  # same names, new content
        Image.new("RGB", (12, 12)).save(p)
    again, _ = load_split(list_split(vtab(tmp_path), "mytask", "test"), 16, tmp_path / "cache")
    assert again.shape == first.shape and again.max() == 0
    assert len(list((tmp_path / "cache").glob("*.npz"))) == 1  # the stale entry is gone


def test_corrupt_image_fails_despite_an_old_cache_entry(tmp_path):
    d = vtab_task(tmp_path, "mytask")
    load_split(list_split(vtab(tmp_path), "mytask", "test"), 16, tmp_path / "cache")
    (d / "images/test/000004.jpg").write_bytes(np.random.default_rng(0).bytes(300))
    with pytest.raises(DataError, match=r"cannot read image .*000004.jpg"):
        load_split(list_split(vtab(tmp_path), "mytask", "test"), 16, tmp_path / "cache")


def test_cache_key_sees_a_same_size_rewrite_with_its_mtime_restored(tmp_path):
    d = vtab_task(tmp_path, "mytask")
    load_split(list_split(vtab(tmp_path), "mytask", "test"), 16, tmp_path / "cache")
    f = d / "images/test/000004.jpg"
    st = f.stat()
    time.sleep(0.02)  # past the file clock's tick, so the rewrite gets a new ctime
    f.write_bytes(bytes(st.st_size))
    os.utime(f, ns=(st.st_atime_ns, st.st_mtime_ns))  # as touch -d / cp -p / rsync -a would leave it
    with pytest.raises(DataError, match=r"cannot read image .*000004.jpg"):
        load_split(list_split(vtab(tmp_path), "mytask", "test"), 16, tmp_path / "cache")


def test_cache_key_of_sources_without_paths(tmp_path):
    for c in ("AnnualCrop", "Forest"):
        for i in range(3):
            write_image(tmp_path / "eurosat" / "2750" / c / f"{c}_{i}.jpg", i)
    cfg = {"source": "torchvision", "root": str(tmp_path), "split_sizes": {"eurosat": [4, 1, 1]}}
    raw = list_split(cfg, "eurosat", "train")
    assert len(raw.files) == 4 and all(f.endswith(".jpg") for f in raw.files)  # torchvision: its samples' files
    before = content_key(raw)
    write_image(Path(raw.files[0]), 99, size=(13, 12))
    assert content_key(list_split(cfg, "eurosat", "train")) != before
    digits = list_split({"source": "digits"}, "d", "train")
    assert digits.files == [] and "sklearn" in digits.key  # the images ship with scikit-learn
    with pytest.raises(TypeError, match="does not name the files"):
        content_key(RawSplit({"source": "x"}, [0], np.zeros(1), 2, load=lambda i: i))


def test_unreadable_cache_file_is_named_and_decoded_again(tmp_path, caplog):
    vtab_task(tmp_path, "mytask")
    raw = list_split(vtab(tmp_path), "mytask", "test")
    first, _ = load_split(raw, 16, tmp_path / "cache")
    (entry,) = (tmp_path / "cache").glob("*.npz")
    entry.write_bytes(b"truncated")
    again, _ = load_split(raw, 16, tmp_path / "cache")
    assert np.array_equal(first, again)
    assert any(f"decode cache file {entry} is unreadable" in m for m in caplog.messages)
    assert cache_mod.fetch_split(raw, 16, tmp_path / "cache")[2] == "hit"  # the new entry replaced it


def fake_entry(path, images, labels, key="its own"):
    """A cache entry as another process or an older version could leave it."""
    np.savez(path, images=images, labels=labels, **({"key": np.array(path.name if key == "its own" else key)}
                                                    if key is not None else {}))


@pytest.mark.parametrize("entry", ["another split's", "no key (an older version)", "another image count",
                                   "other labels"])
def test_a_cache_entry_must_prove_it_is_the_split_it_is_named_for(tmp_path, caplog, entry):
    """A train split's entry copied over the test split's name was taken: the run evaluated on the 12 train
    images instead of the 9 test images, and scored 100%."""
    vtab_task(tmp_path, "mytask")
    cache = tmp_path / "cache"
    train, test = (list_split(vtab(tmp_path), "mytask", s) for s in ("train800", "test"))
    train_images, train_labels = load_split(train, 16, cache)
    test_entry = cache_mod.cache_path(test, 16, cache)
    if entry == "another split's":
        shutil.copy(cache_mod.cache_path(train, 16, cache), test_entry)
    elif entry == "no key (an older version)":
        fake_entry(test_entry, train_images[:9], test.labels, key=None)
    elif entry == "another image count":
        fake_entry(test_entry, train_images[:8], test.labels[:8])
    else:
        fake_entry(test_entry, train_images[:9], (test.labels + 1) % 3)
    images, labels, origin = cache_mod.fetch_split(test, 16, cache)
    assert origin == "decoded" and np.array_equal(images, load_split(test, 16, None)[0])
    assert np.array_equal(labels, test.labels)
    assert any(f"decode cache file {test_entry}" in m and "decoding the split again" in m for m in caplog.messages)


def test_a_cache_that_cannot_be_written_leaves_the_run_uncached_with_a_warning(tmp_path, caplog):
    vtab_task(tmp_path, "mytask")
    raw = list_split(vtab(tmp_path), "mytask", "test")
    (tmp_path / "in-the-way").write_text("a file where the cache folder should be")
    images, labels, origin = cache_mod.fetch_split(raw, 16, tmp_path / "in-the-way")
    assert origin == "uncached" and images.shape == (9, 12, 12, 3) and np.array_equal(labels, raw.labels)
    assert any(f"decode cache folder {tmp_path / 'in-the-way'} cannot take this split" in m for m in caplog.messages)


def test_a_failed_cache_write_leaves_no_temporary_file(tmp_path, monkeypatch):
    """A file-size limit or a full disk hit the write after the decode had finished: the run failed and left
    its temporary file."""
    vtab_task(tmp_path, "mytask")
    raw = list_split(vtab(tmp_path), "mytask", "test")

    def savez_until_full(f, **arrays):
        f.write(b"PK" + bytes(1000))
        raise OSError(errno.EFBIG, "File too large")
    monkeypatch.setattr(cache_mod.np, "savez", savez_until_full)
    assert cache_mod.fetch_split(raw, 16, tmp_path / "cache")[2] == "uncached"
    # the split's decode lock (a few bytes, kept for the next decode) is all that stays
    assert [p.suffix for p in (tmp_path / "cache").iterdir()] == [".lock"]


def test_temporaries_of_killed_decodes_are_swept_on_the_next_start(tmp_path):
    vtab_task(tmp_path, "mytask")
    raw = list_split(vtab(tmp_path), "mytask", "test")
    cache = tmp_path / "cache"
    cache.mkdir()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()  # a process id no live process has
    host, old = socket.gethostname(), time.time() - 2 * cache_mod.LEGACY_TMP_AGE_S
    leftovers = {f".x.npz.{host}-{dead.pid}.tmp": False, f".y.npz.{host}-{os.getpid()}.tmp": True,  # live: kept
                 "z.npz.tmp123": False, "w.npz.tmp456": True}  # an older version's names: by age
    for name in leftovers:
        (cache / name).write_bytes(b"half")
    os.utime(cache / "z.npz.tmp123", (old, old))
    cache_mod.fetch_split(raw, 16, cache)
    assert {name: (cache / name).exists() for name in leftovers} == leftovers
# --- 16-bit and float images -----------------------------------------------------------------------------

def test_16bit_png_is_scaled_not_clipped(tmp_path):
    ramp = np.tile(np.linspace(0, 65535, 32).astype(np.uint16), (4, 1))
    write_gray16(tmp_path / "own/train/a/0.png", ramp)
    write_gray16(tmp_path / "own/train/b/0.png", ramp[:, ::-1])
    raw = list_split({"source": "folder", "root": str(tmp_path)}, "own", "train")
    images, _ = load_split(raw, 16, None)
    assert np.array_equal(images[0, ..., 0], (ramp >> 8).astype(np.uint8))  # top 8 bits: 65535 -> 255
    assert (images[0] == images[0, ..., :1]).all()  # gray in all three channels


def test_mode_i_and_f_images_scale_or_fail():
    ramp = np.linspace(0, 65535, 16).reshape(4, 4)
    assert np.array_equal(np.asarray(to_rgb8(Image.fromarray(ramp.astype(np.int32)), "x"))[..., 0],
                          ramp.astype(np.uint32) >> 8)
    with pytest.raises(DataError, match=r"img.tif: 32-bit integer image with values in \[0, 70000\]"):
        to_rgb8(Image.fromarray(np.array([[0, 70000]], np.int32)), "img.tif")
    unit = np.linspace(0, 1, 16, dtype=np.float32).reshape(4, 4)
    assert np.asarray(to_rgb8(Image.fromarray(unit), "x"))[..., 0].tolist() == np.round(unit * 255).tolist()
    with pytest.raises(DataError, match=r"float image with values in \[0, 2\]"):
        to_rgb8(Image.fromarray(unit * 2), "x")


# --- the folder source matches classes by name ------------------------------------------------------------

def folder(root, **kw):
    return {"source": "folder", "root": str(root), **kw}


def test_folder_eval_split_maps_classes_by_name(tmp_path):
    d = image_folder_task(tmp_path, "own", classes=("cat", "dog", "emu"))
    shutil.rmtree(d / "test/cat")  # a test split lacking a class keeps the others' labels
    raw = list_split(folder(tmp_path), "own", "test")
    assert raw.num_classes == 3 and raw.labels.tolist() == [1, 1, 1, 2, 2, 2]
    (d / "test/dog").rename(d / "test/zdog")
    with pytest.raises(DataError, match=r"class folder\(s\) \['zdog'\] are not classes of task 'own' "
                                        r"\(.*own/train defines 3: cat, dog, emu\)"):
        list_split(folder(tmp_path), "own", "test")


def test_folder_classes_txt_defines_order_and_train_split_is_configurable(tmp_path):
    d = image_folder_task(tmp_path, "own", classes=("cat", "dog"))
    (d / "train").rename(d / "trainval")
    with pytest.raises(DataError, match=r"come from .*classes.txt or from the class folders of its train split "
                                        r".*own/train; neither exists"):
        list_split(folder(tmp_path), "own", "test")
    assert list_split(folder(tmp_path, train_split="trainval"), "own", "test").labels.tolist() == [0] * 3 + [1] * 3
    (d / "classes.txt").write_text("dog\ncat\n")
    assert list_split(folder(tmp_path), "own", "test").labels.tolist() == [1] * 3 + [0] * 3


def test_folder_skips_hidden_folders_and_rejects_empty_classes(tmp_path):
    d = image_folder_task(tmp_path, "own", classes=("cat", "dog"))
    (d / "test/.ipynb_checkpoints").mkdir()
    assert list_split(folder(tmp_path), "own", "test").num_classes == 2
    (d / "train/emu").mkdir()
    with pytest.raises(DataError, match=r"class folder .*own/train/emu has no images"):
        list_split(folder(tmp_path), "own", "train")


# --- what a train split must hold ---------------------------------------------------------------------------

def run_for(root, task, **data):
    return {"task": task, "model": {"image_size": 16},
            "data": {"source": "vtab", "root": str(root), "cache_dir": str(root / "cache"),
                     "split_train": "train800", "split_eval": "test", **data}}


def test_one_class_task_is_an_error(tmp_path):
    vtab_task(tmp_path, "mono", num_classes=1)
    with pytest.raises(DataError, match=r"task 'mono', split 'train800': 1 class\(es\) .* at least two"):
        decoded_splits(run_for(tmp_path, "mono"))
    d = vtab_task(tmp_path, "onelabel", num_classes=3)
    (d / "train800.txt").write_text("".join(f"images/train800/{i:06d}.jpg 2\n" for i in range(4)))
    with pytest.raises(DataError, match=r"task 'onelabel', split 'train800': 1 class\(es\) in the labels"):
        decoded_splits(run_for(tmp_path, "onelabel"))


def test_num_classes_beyond_the_train_labels(tmp_path):
    d = vtab_task(tmp_path, "mytask", num_classes=3)
    (d / "classes.txt").unlink()
    with pytest.raises(DataError, match=r"'mytask': 5 classes, but the train split 'train800' has labels of only 3 "
                                        r"\(missing: 3, 4\): set data.num_classes to 3"):
        decoded_splits(run_for(tmp_path, "mytask", num_classes=5))
    (d / "classes.txt").write_text("".join(f"c{i}\n" for i in range(4)))  # the data declares a 4th class
    with pytest.warns(UserWarning, match=r"4 classes, but .* only 3 \(missing: 3\): the head has 4 outputs"):
        assert decoded_splits(run_for(tmp_path, "mytask"))[1] == 4
    vtab_task(tmp_path, "svhn", num_classes=3)  # VTAB's table says 10: authoritative, a subset may lack some
    (tmp_path / "svhn/classes.txt").unlink()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert decoded_splits(run_for(tmp_path, "svhn"))[1] == 10


# --- timm's data config -----------------------------------------------------------------------------------

def gradient(h, w):
    yy, xx = np.mgrid[0:h, 0:w]
    return np.stack([xx * 12, yy * 18, (xx + yy) * 7], -1).astype(np.uint8)


@pytest.mark.parametrize("interpolation", ["bilinear", "bicubic"])
@pytest.mark.parametrize("crop_mode", ["center", "squash"])
@pytest.mark.parametrize("hw", [(14, 20), (20, 14)])
def test_device_eval_matches_timm_eval_transform(interpolation, crop_mode, hw):
    from timm.data import create_transform
    img = gradient(*hw)
    kw = dict(interpolation=interpolation, crop_pct=0.875, crop_mode=crop_mode, mean=(0.4, 0.5, 0.6),
              std=(0.2, 0.25, 0.3))
    ref = create_transform(input_size=(3, 8, 8), is_training=False, **kw)(Image.fromarray(img))
    x = torch.from_numpy(img).permute(2, 0, 1)[None]
    ours = DeviceTransform(8, **kw)(x)[0]
    std255 = torch.tensor(kw["std"]).view(3, 1, 1) * 255
    assert ((ours - ref).abs() * std255).max() < 1.5  # grey levels: PIL and torch resampling round differently
    uncropped = DeviceTransform(8, **{**kw, "crop_pct": None})(x)[0]
    assert ((uncropped - ref).abs() * std255).max() > 10  # the crop is what makes them agree
    assert torch.equal(DeviceTransform(8, **kw)(x, train=True)[0], uncropped)  # training never center-crops


def test_transform_follows_timm_data_config_and_the_run_records_it(tmp_path):
    import timm
    from aurora_bench.config import load_config, resolve_run
    from aurora_bench.run import train_run
    model_cfg = {"name": "vit_tiny_patch16_224", "pretrained": False, "image_size": 16,
                 "kwargs": {"patch_size": 8, "depth": 1, "embed_dim": 16, "num_heads": 2}}
    model = timm.create_model(model_cfg["name"], img_size=16, **model_cfg["kwargs"])
    model.pretrained_cfg = {**model.pretrained_cfg, "mean": (0.1, 0.2, 0.3), "interpolation": "bilinear"}
    data = {"hflip": False, "crop_scale": None}
    t = transform_for(model, {"model": model_cfg, "data": {**data, "eval_crop": "timm"}})
    assert t.data_config == {"input_size": [3, 16, 16], "interpolation": "bilinear", "mean": [0.1, 0.2, 0.3],
                             "std": [0.5, 0.5, 0.5], "crop_pct": 0.9, "crop_mode": "center"}
    assert transform_for(model, {"model": model_cfg, "data": data}).data_config["crop_pct"] is None  # default

    vtab_task(tmp_path / "data", "mytask", num_classes=3)
    cfg = load_config({"name": "t", "tasks": ["mytask"], "methods": ["linear"], "output": str(tmp_path / "out"), "model": model_cfg,
                       "data": {"root": str(tmp_path / "data"), "cache_dir": str(tmp_path / "cache"),
                                "eval_crop": "timm"},
                       "train": {"epochs": 1, "batch_size": 6, "warmup_epochs": 0, "eval_every": 1, "device": "cpu"}})
    result = train_run(resolve_run(cfg, "mytask", "linear", 0), quiet=True)
    assert result["data_config"]["crop_pct"] == 0.9 and result["data_config"]["input_size"] == [3, 16, 16]
