"""TensorBoard logging of a training run. A run writes curves while training and, at the end, one HParams
session; its folder is emptied of a previous attempt's event files first, so a retried run shows one curve, not
two. The report (report/tensorboard.py) declares the HParams columns (experiment_summary) in its own run.

Final metrics are read by the HParams plugin from the curves' last points (eval/accuracy, train/loss); the
merged forms' accuracies (AuroRA's static merge, the calibrated merge) are written at the final step to the
run's `merged` sub-run under tags of their own (merged/...): the HParams plugin finds them there (a metric's
group is a sub-run of its session), and the scalars page draws them apart from the training curves."""
from dataclasses import asdict
from pathlib import Path

# summary_v2, not hparams.api: the api module imports TensorFlow
from tensorboard.plugins.hparams import plugin_data_pb2
from tensorboard.plugins.hparams import summary_v2 as hp
from torch.utils.tensorboard import SummaryWriter

import aurora_vision as av
from aurora_vision.config import make_config

EVENTS = "events.out.tfevents.*"
MERGED_RUN = "merged"
# a merged form (as in the record's accuracy_<form>_merge) -> its tag in the merged sub-run
MERGED_TAGS = {"static": "merged/static_accuracy", "calibrated": "merged/calibrated_accuracy"}


def start_fresh(logdir) -> Path:
    """Remove the event files a previous attempt of this run left in its folder (and sub-run)."""
    logdir = Path(logdir)
    for folder in (logdir, logdir / MERGED_RUN):
        for f in folder.glob(EVENTS):
            f.unlink()
    return logdir


class RunLogger:
    """Writes to `logdir`; with logdir=None it records nothing (tests, quick runs)."""

    def __init__(self, logdir=None):
        self.logdir = start_fresh(logdir) if logdir else None
        self.writer = SummaryWriter(str(self.logdir)) if logdir else None

    def scalars(self, step: int, **values) -> None:
        if self.writer:
            for tag, value in values.items():
                self.writer.add_scalar(tag.replace("__", "/"), value, step)

    def hparams(self, hparams: dict, trial_id: str, step: int, merged: dict | None = None) -> None:
        """The run's HParams session, named trial_id; merged: {form: accuracy or None} (MERGED_TAGS' forms),
        written at the final step."""
        if not self.writer:
            return
        # a raw Summary: torch's own add_hparams writes this way, but names the session by a hash and makes
        # its metrics one-point scalars
        self.writer._get_file_writer().add_summary(hp.hparams_pb(hparams, trial_id=trial_id))
        measured = {form: acc for form, acc in (merged or {}).items() if acc is not None}
        if measured:
            with SummaryWriter(str(self.logdir / MERGED_RUN)) as w:
                for form, acc in measured.items():
                    w.add_scalar(MERGED_TAGS[form], acc, step)

    def close(self) -> None:
        if self.writer:
            self.writer.close()


def trial_id(run: dict) -> str:
    """Method first, like the run's folder (store.logdir), so one method's seeds sort together."""
    return f"{run['method']['variant']}/{run['task']}/seed{run['seed']}"


# name -> (description, real-valued); the rest are discrete: the HParams tab offers their values as filters
HPARAMS = {
    "method": ("method variant (config name)", False), "base_method": ("registered method", False),
    "rank": ("adapter rank r (0: none)", False), "targets": ("adapted layers", False),
    "task": ("task", False), "seed": ("seed", False), "model": ("timm model", False),
    "lr": ("learning rate", False), "head_lr": ("head learning rate", False), "epochs": ("epochs", False),
    "trainable_params": ("trainable parameters, head included", True), "gmacs": ("GMACs per image", True),
}
ACCURACY = hp.Metric("eval/accuracy", display_name="accuracy (%)", description="final-epoch evaluation accuracy")
LOSS = hp.Metric("train/loss", display_name="final train loss")
MERGED_METRICS = {
    "static": hp.Metric(MERGED_TAGS["static"], group=MERGED_RUN, display_name="static-merge accuracy (%)",
                        description="the same model with its adapters merged approximately (AuroRA's static form)"),
    "calibrated": hp.Metric(MERGED_TAGS["calibrated"], group=MERGED_RUN, display_name="calibrated-merge accuracy (%)",
                            description="the same model with each adapter folded into the linear map fitted on "
                                        "training activations (train.calibrated_merge)"),
}


def metrics(records: list[dict]) -> list:
    """The HParams metrics: accuracy and loss, and each merged form some run measured (no empty column)."""
    merged = [m for form, m in MERGED_METRICS.items()
              if any(r.get(f"accuracy_{form}_merge") is not None for r in records if r["status"] == "ok")]
    return [ACCURACY, *merged, LOSS]


def run_hparams(run: dict, trainable_params: int, gmacs: float) -> dict:
    method = run["method"]
    cfg = method_config(method)
    return {"method": method["variant"], "base_method": method["name"], "rank": cfg.get("r", 0),
            "targets": str(cfg.get("targets", "-")), "task": run["task"], "seed": run["seed"],
            "model": run["model"]["name"], "lr": run["train"]["lr"],
            "head_lr": run["train"]["head_lr"] or run["train"]["lr"], "epochs": run["train"]["epochs"],
            "trainable_params": trainable_params, "gmacs": gmacs}


def method_config(method: dict) -> dict:
    """The method's config as it ran: the run's entries over the registered defaults (AuroRA's r=2)."""
    return asdict(make_config(av.get_method(method["name"]).config_cls, method["config"]))


# TensorBoard's HParams table shows 5 hparam columns by default (a frontend constant), those marked `differs`
# first: these, in this order, the ones that vary across runs before the ones that do not. The rest are a
# checkbox away.
DEFAULT_COLUMNS = ("method", "rank", "targets", "task", "seed", "lr", "model")
SHOWN = 5


def experiment_summary(records: list[dict]):
    """The HParams experiment of a results folder: every hparam declared with the values its runs took (the
    filters list them all) and the columns shown by default chosen by DEFAULT_COLUMNS."""
    rows = [run_hparams(r["config"], r["params"]["trainable"], r["gmacs_per_image"])
            for r in records if r["status"] == "ok" and not r.get("static_merge_of")]  # runs, not report rows
    hparams = []
    for name, (description, real) in HPARAMS.items():
        values = sorted({row[name] for row in rows}, key=lambda v: (isinstance(v, str), v))
        if real:
            domain = hp.RealInterval(float(values[0]), float(values[-1]))
        elif all(isinstance(v, str) for v in values):
            domain = hp.Discrete(values)
        else:
            domain = hp.Discrete([float(v) for v in values])
        hparams.append(hp.HParam(name, domain, description=description))
    varies = {name for name in HPARAMS if len({row[name] for row in rows}) > 1}
    shown = ([c for c in DEFAULT_COLUMNS if c in varies] + [c for c in DEFAULT_COLUMNS if c not in varies])[:SHOWN]
    summary = hp.hparams_config_pb(hparams, metrics(records))
    value = summary.value[0]  # HParam has no `differs` argument: set it in the written experiment
    data = plugin_data_pb2.HParamsPluginData.FromString(value.metadata.plugin_data.content)
    for info in data.experiment.hparam_infos:
        info.differs = info.name in shown
    value.metadata.plugin_data.content = data.SerializeToString()
    return summary

