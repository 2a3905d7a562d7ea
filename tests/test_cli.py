"""aurora-bench's command line: commands, argument order, one-line errors, and the demo end to end."""
import json

from benchmarks.cli import main

from test_runner import tiny_cfg


def test_cli_run_and_unknown_method(tmp_path, capsys):
    cfg = tiny_cfg(tmp_path)
    (tmp_path / "c.yaml").write_text(json.dumps(cfg))
    assert main(["run", str(tmp_path / "c.yaml"), "--task", "mytask", "--method", "linear", "--quiet"]) == 0
    assert main(["run", str(tmp_path / "c.yaml"), "--task", "mytask", "--method", "lorax", "--quiet"]) == 1
    assert "unknown method 'lorax'; known methods: aurora, bitfit" in capsys.readouterr().out


def test_demo_end_to_end_shortened(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--quiet", "--set", f"output={out}", "seeds=[0]", "train.epochs=2", "train.warmup_epochs=1",
                 "methods=[linear,aurora]", "pretrain.epochs=2", f"data.cache_dir={tmp_path / 'cache'}"])
    assert code == 0
    text = capsys.readouterr().out
    assert "| aurora |" in text and "| linear |" in text
    assert (out / "pretrained" / "backbone.safetensors").is_file() and (out / "pareto.png").is_file()
    assert list((out / "tb" / "digits_5_9" / "aurora" / "seed0").glob("events.*"))
