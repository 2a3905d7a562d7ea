"""aurora-bench's command line: commands, argument order, one-line errors, `list`, and the demo end to end."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from aurora_bench.config import resolve_run

from aurora_bench import sweep as sweep_module
from aurora_bench.cli import build_parser, main, parse_args

from fixtures import tiny_cfg

VTAB1K = str(Path(__file__).parent.parent / "configs" / "vtab1k.yaml")


@pytest.fixture
def config(tmp_path) -> str:
    path = tmp_path / "c.yaml"
    path.write_text(json.dumps(tiny_cfg(tmp_path)))
    return str(path)


@pytest.fixture
def runs(monkeypatch) -> list:
    """The runs `aurora-bench run` starts, recorded instead of trained."""
    started = []

    def fake(cfg, task, variant, seed, quiet=False, replace_changed=False):
        started.append(resolve_run(cfg, task, variant, seed))
        return {"status": "ok", "accuracy": 50.0}
    monkeypatch.setattr(sweep_module, "run_one", fake)
    return started


@pytest.mark.parametrize("order", [
    ["run", "CONFIG", "--task", "mytask", "--method", "linear", "--set", "train.lr=0.01", "seeds=[0,1]"],
    ["run", "--task", "mytask", "--method", "linear", "--set", "train.lr=0.01", "seeds=[0,1]", "CONFIG"],
    ["run", "--set", "train.lr=0.01", "seeds=[0,1]", "CONFIG", "--task", "mytask", "--method", "linear"],
    ["run", "--set", "train.lr=0.01", "--task", "mytask", "--set", "seeds=[0,1]", "--method", "linear", "CONFIG"],
    ["-v", "run", "--method", "linear", "CONFIG", "--task", "mytask", "--set", "train.lr=0.01", "seeds=[0,1]"],
])
def test_options_and_the_config_in_any_order(config, runs, order):
    assert main([config if a == "CONFIG" else a for a in order]) == 0
    assert [(r["task"], r["method"]["variant"], r["train"]["lr"]) for r in runs] == [("mytask", "linear", 0.01)]


def test_list_options_leave_the_config_alone(config):
    args = parse_args(["sweep", "--slurm", "local", "--slurm-opts", "timeout_min=5", "mem_gb=8", config])
    assert args.config == config and args.slurm_opts == ["timeout_min=5", "mem_gb=8"]
    assert parse_args(["sweep", "--ray", config]).config == config
    with pytest.raises(SystemExit):
        parse_args(["sweep", config, "--set", "train.lr=0.1", "other.yaml"])  # two configs
    with pytest.raises(SystemExit):
        parse_args(["sweep", "--set", "train.lr=0.1"])  # none


def test_unknown_task_or_method_is_refused_before_anything_loads(config, runs, capsys):
    assert main(["run", config, "--task", "digits_0_4", "--method", "linear"]) == 2
    assert "task 'digits_0_4' is not in the config's tasks" in capsys.readouterr().err
    assert main(["run", config, "--task", "mytask", "--method", "lorax"]) == 2
    assert "unknown method 'lorax'; did you mean 'lora'?" in capsys.readouterr().err
    assert runs == []
    assert main(["run", config, "--task", "mytask", "--method", "bitfit"]) == 0  # registered, not in methods: fine


def test_a_config_mistake_is_one_line_and_verbose_shows_the_traceback(config, capsys):
    assert main(["sweep", config, "--set", "train.lr=-1"]) == 2
    err = capsys.readouterr().err
    assert err.strip().splitlines() == ["aurora-bench: error: train.lr must be > 0, got -1"]
    for argv in (["-v", "sweep", config], ["sweep", config, "--verbose"]):
        assert main(argv + ["--set", "train.lr=-1"]) == 2
        err = capsys.readouterr().err
        assert "Traceback" in err
        assert err.strip().splitlines()[-1] == "aurora-bench: error: train.lr must be > 0, got -1"


def test_a_sweep_without_its_data_root_stops_before_the_first_run(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(sweep_module, "sweep", lambda *a, **k: pytest.fail("the sweep started"))
    assert main(["sweep", VTAB1K, "--set", f"output={tmp_path}"]) == 2
    assert "data.source 'vtab' needs data.root" in capsys.readouterr().err


@pytest.mark.parametrize("command", [["sweep"], ["run", "--task", "mytask", "--method", "linear"], ["tune"],
                                     ["demo"]], ids=["sweep", "run", "tune", "demo"])
def test_an_output_folder_that_cannot_be_made_is_one_line(config, tmp_path, capsys, command):
    """A regular file in the way gave a NotADirectoryError / FileExistsError traceback."""
    (tmp_path / "a-file").write_text("in the way")
    argv = command[:1] + ([] if command == ["demo"] else [config]) + command[1:] + ["--quiet"]
    # tune writes into <output>-tune: a file named like the output is no obstacle there
    for output in ["a-file/results"] + (["a-file"] if command != ["tune"] else []):
        assert main(argv + ["--set", f"output={tmp_path / output}"]) == 2
        err = capsys.readouterr().err.strip()
        folder = tmp_path / (output + ("-tune" if command == ["tune"] else ""))
        assert err.startswith(f"aurora-bench: error: output folder {folder} cannot be made (") and "\n" not in err
        assert err.endswith("set output to a folder you can write, e.g. --set output=results/<name>")
    assert (tmp_path / "a-file").read_text() == "in the way"


LIBRARIES = ("torch", "torchvision", "timm", "scipy")  # seconds to import, together


@pytest.mark.parametrize("argv, code", [
    (["--help"], 0), (["sweep", "--help"], 0), (["demo", "--help"], 0), (["sweep"], 2),  # no config
    (["sweep", VTAB1K, "--set", "train.lrr=1"], 2),  # a mistyped key
    (["tune", VTAB1K, "--set", "train.lr=-1"], 2),  # a value out of range
    (["sweep", VTAB1K], 2),  # no data.root
    (["run", VTAB1K, "--task", "dtd", "--method", "lora", "--set", "data.root=/nowhere"], 2)])  # not there
def test_help_and_a_mistake_answer_without_loading_torch(argv, code):
    """`--help`, a subcommand's, and a one-line mistake in the command, the config's keys and values or its data
    answer at once: torch, torchvision, timm and scipy load where they are used. A test of what is imported,
    not of how long it takes (RESULTS.md "CLI start-up" has the times)."""
    probe = ("import sys\nfrom aurora_bench.cli import main\ntry:\n    code = main(sys.argv[1:])\n"
             "except SystemExit as e:\n    code = e.code\n"
             f"print(code, sorted(m for m in {LIBRARIES!r} if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", probe, *argv], capture_output=True, text=True, timeout=120)
    assert out.stdout.strip().splitlines()[-1] == f"{code} []", out.stderr


ROOT_MISSING = "data.root {tmp}/nowhere does not exist"
TASK_MISSING = "no folder for task 'mytsk' under {tmp}/data; did you mean 'mytask'?"
RUN = ["run", "--task", "mytask", "--method", "linear"]


@pytest.mark.parametrize("command, mistake, named", [
    (["sweep"], "data.root={tmp}/nowhere", ROOT_MISSING),
    (["tune"], "data.root={tmp}/nowhere", ROOT_MISSING),
    (RUN, "data.root={tmp}/nowhere", ROOT_MISSING),
    (["sweep"], "tasks=[mytask,mytsk]", TASK_MISSING),
    (["tune"], "tasks=[mytask,mytsk]", TASK_MISSING),
    (["tune"], "tune.tasks=[mytsk]", TASK_MISSING),
    (["run", "--task", "mytsk", "--method", "linear"], "tasks=[mytask,mytsk]", TASK_MISSING),
    (["sweep"], "data.eval_split=tset", "split file {tmp}/data/mytask/tset.txt is missing"),
    (["tune"], "data.tuning_eval_split=vla200", "split file {tmp}/data/mytask/vla200.txt is missing"),
    (RUN, "data.eval_split=tset", "split file {tmp}/data/mytask/tset.txt is missing")])
def test_missing_data_is_refused_once_before_any_run_is_made_or_recorded(tmp_path, config, command, mistake, named,
                                                                         capsys):
    """A mistyped data root, task or split, for sweep, tune and run alike: one line naming it (exit 2), no run made
    and no record written, not a failed run per task (which a later sweep with the right root would meet)."""
    code = main([*command, config, "--quiet", "--set", mistake.format(tmp=tmp_path)])
    lines = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and lines[0].startswith(f"aurora-bench: error: {named.format(tmp=tmp_path)}")
    assert not (tmp_path / "out").exists() and not (tmp_path / "out-tune").exists()


@pytest.mark.parametrize("workers", ["0", "-3", "two"])
def test_workers_must_be_a_positive_number(workers, capsys):
    with pytest.raises(SystemExit) as e:
        main(["sweep", VTAB1K, "--workers", workers])
    assert e.value.code == 2
    assert f"argument --workers: must be a whole number >= 1, got '{workers}'" in capsys.readouterr().err


def test_every_argument_has_help():
    for name, command in build_parser().commands.items():
        for action in command._actions:
            assert action.help, f"aurora-bench {name}: {action.dest} has no help"


def test_demo_help_suggests_demo_settings(capsys):
    with pytest.raises(SystemExit):
        main(["demo", "--help"])
    out = capsys.readouterr().out
    assert "data.root" not in out and "vtab" not in out and "pretrain.epochs=" in out


def test_list_shows_tasks_methods_seeds_and_the_data_options(capsys):
    assert main(["list", VTAB1K, "--set", "seeds=[0,1]", "methods=[lora,lora_r2,aurora_all]"]) == 0
    out = capsys.readouterr().out
    assert "vtab1k: 19 task(s) x 3 method(s) x 2 seed(s) = 114 runs -> results/vtab1k" in out
    assert "tasks: cifar, caltech101, dtd," in out and "seeds: 0, 1" in out
    assert [line.split() for line in out.splitlines() if "-> lora" in line] == [
        ["lora", "->", "lora", "lr", "0.001", "config:", "r=8", "alpha=8", "targets=qv"],
        ["lora_r2", "->", "lora", "lr", "0.001", "config:", "r=2", "alpha=2", "targets=qv"]]
    assert "data: source vtab" in out
    assert "folder holding one folder per task  [required: --set data.root=...]" in out


def test_cli_run_end_to_end(config, capsys):
    assert main(["run", config, "--task", "mytask", "--method", "linear", "--quiet"]) == 0
    assert capsys.readouterr().out.startswith("ok: accuracy ")
    assert list((Path(json.loads(Path(config).read_text())["output"]) / "runs").glob("mytask__linear__seed0.json"))


@pytest.mark.slow  # pre-trains and sweeps the demo
def test_demo_end_to_end_shortened(tmp_path, capsys):
    out = tmp_path / "demo"
    code = main(["demo", "--quiet", "--set", f"output={out}", "seeds=[0]", "train.epochs=2", "train.warmup_epochs=1",
                 "methods=[linear,aurora]", "pretrain.epochs=2", f"data.cache_dir={tmp_path / 'cache'}"])
    assert code == 0
    text = capsys.readouterr().out
    assert "| aurora |" in text and "| linear |" in text
    assert (out / "pretrained" / "backbone.safetensors").is_file() and (out / "pareto.png").is_file()
    assert list((out / "tb" / "runs" / "aurora" / "digits_5_9" / "seed0").glob("events.*"))


def test_status_lines_on_stderr_until_training_starts(config, capsys):
    assert main(["run", config, "--task", "mytask", "--method", "linear"]) == 0
    err = capsys.readouterr().err
    for line in ("loading mytask: vtab splits train800val200 and test",
                 "building model vit_tiny_patch16_224 with linear (linear)", "training on cpu"):
        assert line in err
    assert main(["run", config, "--task", "mytask", "--method", "linear", "--quiet"]) == 0
    assert "building model" not in capsys.readouterr().err
