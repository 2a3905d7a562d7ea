import pytest

from benchmarks import store

BASE = {}


def fake_result(task, method, seed, acc, trainable, head=10, gmacs=1.0, suite="vtab", num_eval=1000, **extra):
    name = BASE.get(method, method)
    return {"status": "ok", "task": task, "method": method, "seed": seed, "accuracy": acc,
            "accuracy_of": "test split, final epoch (1)", "num_eval": num_eval, "num_classes": 10,
            "config": {"suite": suite, "task": task, "seed": seed, "model": {"name": "vit_tiny"},
                       "method": {"variant": method, "name": name, "config": {}},
                       "train": {"lr": 1e-3, "head_lr": None, "epochs": 1}},
            "params": {"trainable": trainable, "head": head}, "gmacs_per_image": gmacs, "uncounted_ops": {},
            "train_img_per_s": 100.0, **extra}


def test_run_logdir_leads_with_the_method():
    run = {"task": "dtd", "method": {"variant": "lora_r4"}, "seed": 2}
    assert store.logdir("out", run).parts[-4:] == ("tb", "lora_r4", "dtd", "seed2")


def events(folder):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    acc = EventAccumulator(str(folder))
    acc.Reload()
    return acc


def test_a_rerun_starts_its_logdir_fresh(tmp_path):
    from benchmarks.run.tensorboard import RunLogger, run_hparams, trial_id
    run = fake_result("dtd", "lora", 0, 0.0, 0)["config"]
    logdir = store.logdir(tmp_path, run)
    for epochs in (18, 60):  # an attempt killed after 18 epochs, then the retry that finishes
        logger = RunLogger(logdir)
        for epoch in range(1, epochs + 1):
            logger.scalars(epoch, train__loss=1.0 / epoch)
        logger.hparams(run_hparams(run, 100, 1.0), trial_id(run), epochs, static_merge_accuracy=float(epochs))
        logger.close()
    assert len(list(logdir.glob("events.*"))) == 1
    assert [e.step for e in events(logdir).Scalars("train/loss")] == list(range(1, 61))
    static = events(logdir / "static_merge").Scalars("eval/accuracy")
    assert [(e.step, e.value) for e in static] == [(60, 60.0)]


def test_a_run_logs_curves_and_one_hparams_session(tmp_path):
    from tensorboard.plugins.hparams import metadata
    from benchmarks.config import resolve_run
    from benchmarks.run import train_run
    from test_runner import tiny_cfg

    run = resolve_run(tiny_cfg(tmp_path), "mytask", "aurora", 0)
    logdir = store.logdir(tmp_path / "out", run)
    train_run(run, logdir=logdir, quiet=True)
    acc = events(logdir)
    scalars = {tag: [e.step for e in acc.Scalars(tag)] for tag in acc.Tags()["scalars"]}
    # curves only, one point per epoch: final metrics come from their last points, no one-dot charts
    assert scalars == {tag: [1, 2] for tag in ("train/loss", "train/lr", "train/img_per_s", "eval/accuracy")}
    session = metadata.parse_session_start_info_plugin_data(
        acc.PluginTagToContent(metadata.PLUGIN_NAME)[metadata.SESSION_START_INFO_TAG])
    assert session.group_name == "aurora/mytask/seed0"
    assert {"method", "rank", "targets", "task", "seed", "model", "lr"} <= set(session.hparams)
    assert session.hparams["method"].string_value == "aurora" and session.hparams["rank"].number_value == 2
    assert [e.step for e in events(logdir / "static_merge").Scalars("eval/accuracy")] == [2]
