"""TensorBoard logging for one run: scalars while training, an HParams entry at the end."""
from torch.utils.tensorboard import SummaryWriter


class RunLogger:
    """Writes to `logdir`; with logdir=None it records nothing (tests, quick runs)."""

    def __init__(self, logdir=None):
        self.writer = SummaryWriter(str(logdir)) if logdir else None

    def scalars(self, step: int, **values) -> None:
        if self.writer:
            for tag, value in values.items():
                self.writer.add_scalar(tag.replace("__", "/"), value, step)

    def hparams(self, hparams: dict, metrics: dict) -> None:
        """One HParams row per run, so the HParams tab compares methods side by side."""
        if self.writer:
            flat = {k: v if isinstance(v, (int, float, str, bool)) else str(v) for k, v in hparams.items()}
            self.writer.add_hparams(flat, {f"hparam/{k}": v for k, v in metrics.items()}, run_name=".")

    def close(self) -> None:
        if self.writer:
            self.writer.close()


def run_hparams(run: dict) -> dict:
    method = run["method"]
    cfg = method["config"]
    return {"task": run["task"], "method": method["variant"], "base_method": method["name"], "seed": run["seed"],
            "rank": cfg.get("r", 0), "targets": cfg.get("targets", "-"), "lr": run["train"]["lr"],
            "head_lr": run["train"]["head_lr"] or run["train"]["lr"], "epochs": run["train"]["epochs"],
            "model": run["model"]["name"]}
