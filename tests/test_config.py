"""The config schema: every key declared, every value checked (the overrides' too), includes, `--set`, and
every shipped config loading through it."""
from pathlib import Path

import pytest
import yaml

from aurora_bench.config import load_config, require_ready, resolve_run
from aurora_bench.data import DataError
from aurora_bench.schema import ConfigError

from fixtures import vtab_task

ROOT = Path(__file__).parent.parent
SMALL = {"name": "t", "tasks": ["a", "b"], "methods": ["lora", "aurora"],
         "train": {"epochs": 5, "warmup_epochs": 1}, "data": {"root": "/data"}}


def test_include_set_and_overrides(tmp_path):
    (tmp_path / "base.yaml").write_text("train: {epochs: 7, warmup_epochs: 2, lr: 0.5}\nmethods: [lora]\n")
    (tmp_path / "suite.yaml").write_text(
        "include: [base.yaml]\ntasks: [a, b]\nmethod_overrides: {lora_r2: {method: lora, config: {r: 2}, "
        "train: {lr: 0.1}}}\ntask_overrides: {b: {train: {epochs: 3}}}\n")
    cfg = load_config(tmp_path / "suite.yaml", ["seeds=[0,1]", "train.weight_decay=0.2", "tuning=true"])
    assert cfg["train"]["epochs"] == 7 and cfg["seeds"] == [0, 1] and cfg["train"]["weight_decay"] == 0.2
    run = resolve_run(cfg, "b", "lora_r2", 1)
    assert run["method"] == {"variant": "lora_r2", "name": "lora", "config": {"r": 2}}
    assert run["train"]["lr"] == 0.1 and run["train"]["epochs"] == 3
    assert run["data"]["split_train"] == "train800" and run["data"]["split_eval"] == "val200"  # tuning mode
    with pytest.raises(ConfigError, match="unknown key method; did you mean 'methods'"):
        load_config(None, ["method=lora"])
    with pytest.raises(ConfigError, match="nope.yaml does not exist"):
        load_config(tmp_path / "nope.yaml")


@pytest.mark.parametrize("override, message", [
    ("train.epocs=5", "unknown key train.epocs; did you mean 'epochs'"),
    ("train.learning_rate=0.1", "unknown key train.learning_rate; did you mean 'lr'"),
    ("trian.lr=0.1", "unknown key trian; did you mean 'train'"),
    ("model.nmae=vit", "unknown key model.nmae; did you mean 'name'"),
    ("train.precision=fp16", "train.precision must be one of auto, bf16, fp32, fp8"),
    ("train.lr=-0.001", "train.lr must be > 0, got -0.001"),
    ("train.head_lr=0", "train.head_lr must be > 0"),
    ("train.weight_decay=-1", "train.weight_decay must be >= 0"),
    ("train.warmup_epochs=6", "train.warmup_epochs (6) must be below train.epochs (5)"),
    ("train.warmup_epochs=5", "train.warmup_epochs (5) must be below train.epochs (5)"),
    ("train.epochs=ten", "train.epochs must be int, got 'ten'"),
    ("train.epochs=0", "train.epochs must be >= 1"),
    ("train.batch_size=0", "train.batch_size must be >= 1"),
    ("train.eval_every=0", "train.eval_every must be >= 1"),
    ("train.eval_batch_size=0", "train.eval_batch_size must be >= 1"),
    ("train.schedule=step", "train.schedule must be one of 'cosine', 'linear'"),
    ("train.label_smoothing=1.0", "train.label_smoothing must be in [0, 1)"),
    ("train.device=gpu", "train.device must be 'auto' or a torch device"),
    ("seeds=[0,0]", "seeds must not repeat entries (repeated: 0)"),
    ("seeds=[]", "seeds must list at least one entry"),
    ("seeds=[-1]", "seeds entries must be in"),
    ("seeds=0", "seeds must be a list such as [0]"),
    ("tasks=mytask", "tasks must be a list such as [mytask], got 'mytask'"),
    ("tasks=[]", "tasks must list at least one task"),
    ("tasks=[a,a]", "tasks must not repeat entries"),
    ("methods=lora", "methods must be a list such as [lora]"),
    ("methods=[lorax]", "methods: 'lorax' is neither a registered method nor a variant in method_overrides; "
                        "did you mean 'lora'"),
    ("suite=vtab2", "suite must be one of"),
    ("data.roots=/x", "unknown key data.roots; did you mean 'root'"),
    ("data.download=true", "unknown key data.download for data.source 'vtab' (an option of source torchvision)"),
    ("data.source=vtb", "data.source 'vtb' is not a data source; did you mean 'vtab'"),
    ("data.hflip=yes please", "data.hflip must be bool"),
    ("method_overrides.lora.config.rank=4", "method_overrides.lora.config does not fit method 'lora': "
                                            "LoraConfig has no field(s) ['rank']"),
    ("method_overrides.lora.config.r=0", "method_overrides.lora.config does not fit method 'lora': r must be"),
    ("method_overrides.lora.method=lorra", "method 'lorra' (of variant 'lora') is not a registered method; "
                                           "did you mean 'lora'"),
    ("method_overrides.lora.trian={}", "unknown key method_overrides.lora.trian; did you mean 'train'"),
    ("method_overrides.lora.train.lr=-1", "method_overrides.lora.train.lr must be > 0"),
    ("task_overrides.b.train.lr=-1", "task_overrides.b.train.lr must be > 0"),
    ("task_overrides.b.data.rot=/x", "unknown key task_overrides.b.data.rot; did you mean 'root'"),
    ("task_overrides.b.train.epochs=1", "the run of task 'b' with method 'lora': train.warmup_epochs (1) must "
                                        "be below train.epochs (1)"),
    ("task_overrides.b.train.epochs=1", "(this run merges task_overrides.b over the config)"),
    ("task_overrides.bb.train.lr=0.1", "task_overrides.bb: 'bb' is neither in tasks nor a task of suite 'vtab'; "
                                       "did you mean 'b'"),
    ("lrs.lora=-0.1", "lrs.lora must be a learning rate > 0"),
    ("lrs.lorax=0.1", "lrs: 'lorax' is neither a registered method"),
    ("tune.lrs.default=[0]", "tune.lrs must map each variant to a non-empty list of rates > 0"),
    ("tune.methods=[lorax]", "tune.methods: 'lorax' is neither"),
    ("tune.lrs={lora: [0.1]}", "tune.lrs has no grid for 'aurora'"),
    # names that become file names: a task '../data/colours' wrote its record outside runs/
    ("tasks=[a, ../data/colours]", "tasks entries must be a plain name: not empty, no '/'"),
    ("tasks=[..]", "tasks entries must be a plain name"),
    ("tasks=[.hidden]", "tasks entries must be a plain name"),  # runs/.hidden__*.json: never read back
    ("tasks=['a\\b']", "tasks entries must be a plain name"),
    ("tune.tasks=[../x]", "tune.tasks entries must be a plain name"),
    ("method_overrides={../lora: {method: lora}}", "method_overrides: the variant name '../lora' must be a plain name"),
    ("name=..", "name must be a plain name"),
])
def test_a_bad_key_or_value_is_refused_naming_it(override, message):
    with pytest.raises(ConfigError) as e:
        load_config(SMALL, [override])
    assert message in str(e.value)


def test_a_deterministic_run_refuses_the_autotuned_compile_it_would_not_do():
    """inductor's deterministic mode times no GEMM: the autotune would silently not happen."""
    with pytest.raises(ConfigError, match="train.deterministic cannot go with train.compile=regional-autotune"):
        load_config(SMALL, ["train.deterministic=true", "train.compile=regional-autotune"])
    assert load_config(SMALL, ["train.deterministic=true", "train.compile=regional"])["train"]["deterministic"]


def test_exponent_floats_are_numbers_not_strings(tmp_path):
    # PyYAML alone reads 1e-3 as the string '1e-3'
    (tmp_path / "c.yaml").write_text("tasks: [a]\ntrain: {lr: 1e-3, weight_decay: 5e-5}\n")
    cfg = load_config(tmp_path / "c.yaml", ["train.head_lr=3e-3"])
    assert (cfg["train"]["lr"], cfg["train"]["weight_decay"], cfg["train"]["head_lr"]) == (1e-3, 5e-5, 3e-3)


def test_include_must_be_a_list_of_file_names(tmp_path):
    (tmp_path / "base.yaml").write_text("tasks: [a]\n")
    (tmp_path / "c.yaml").write_text("include: base.yaml\n")
    with pytest.raises(ConfigError, match=r"include in .*c.yaml must be a list of file names such as \[base.yaml\]"):
        load_config(tmp_path / "c.yaml")


def test_include_cycles_and_missing_includes_name_the_chain(tmp_path):
    (tmp_path / "self.yaml").write_text("include: [self.yaml]\ntasks: [a]\n")
    with pytest.raises(ConfigError, match=r"include cycle: .*self.yaml -> .*self.yaml"):
        load_config(tmp_path / "self.yaml")
    (tmp_path / "a.yaml").write_text("include: [b.yaml]\n")
    (tmp_path / "b.yaml").write_text("include: [a.yaml]\n")
    with pytest.raises(ConfigError, match=r"include cycle: .*a.yaml -> .*b.yaml -> .*a.yaml"):
        load_config(tmp_path / "a.yaml")
    (tmp_path / "c.yaml").write_text("include: [gone.yaml]\n")
    with pytest.raises(ConfigError, match=r"gone.yaml does not exist \(included by .*c.yaml\)"):
        load_config(tmp_path / "c.yaml")


def test_includes_too_deep_or_too_wide_and_oversized_files_are_refused_at_once(tmp_path):
    """A 1,200-deep include chain ended in a RecursionError after 52 s; a 10 MB config took 162 s and 2.2 GB."""
    from aurora_bench.config import MAX_CONFIG_BYTES, MAX_CONFIG_FILES
    for i in range(MAX_CONFIG_FILES + 5):
        (tmp_path / f"c{i}.yaml").write_text(f"include: [c{i + 1}.yaml]\n")
    (tmp_path / f"c{MAX_CONFIG_FILES + 5}.yaml").write_text("tasks: [a]\n")
    with pytest.raises(ConfigError, match=rf"c0.yaml and its includes make more than {MAX_CONFIG_FILES} config files "
                                          rf"to read \(includes here: .*c0.yaml -> .*c1.yaml -> ... -> .*; flatten"):
        load_config(tmp_path / "c0.yaml")
    assert load_config(tmp_path / f"c{MAX_CONFIG_FILES // 2}.yaml")["tasks"] == ["a"]  # a chain within the bound
    (tmp_path / "wide.yaml").write_text(f"include: [{', '.join(['c60.yaml'] * 10)}]\n")  # 10 x 11 files
    with pytest.raises(ConfigError, match="more than"):
        load_config(tmp_path / "wide.yaml")
    (tmp_path / "big.yaml").write_text("tasks: [a]\n" + "# padding\n" * (MAX_CONFIG_BYTES // 10))
    with pytest.raises(ConfigError, match=r"big.yaml is [\d,]+ bytes, over the 262,144 a config may be"):
        load_config(tmp_path / "big.yaml")


def test_a_file_that_is_not_a_mapping_or_not_yaml_is_refused(tmp_path):
    (tmp_path / "list.yaml").write_text("- a\n- b\n")
    with pytest.raises(ConfigError, match="must hold a mapping of keys"):
        load_config(tmp_path / "list.yaml")
    (tmp_path / "bad.yaml").write_text("tasks: [a\n")
    with pytest.raises(ConfigError, match=r"bad.yaml is not valid YAML \(line"):
        load_config(tmp_path / "bad.yaml")
    with pytest.raises(ConfigError, match="must look like key.path=value"):
        load_config(SMALL, ["train.lr"])
    with pytest.raises(ConfigError, match="train.lr is 0.001, not a section"):
        load_config(SMALL, ["train.lr.x=1"])


def test_resolved_runs_are_complete_and_checked():
    cfg = load_config(SMALL)
    run = resolve_run(cfg, "a", "lora", 0)
    assert run["train"]["deterministic"] is False  # declared for the training loop, default off
    assert run["data"]["num_classes"] is None and run["data"]["root"] == "/data"  # the source's defaults filled in
    # a variant that no check at load saw (resolve_run is also called on configs built in code)
    cfg["method_overrides"]["lora_neg"] = {"method": "lora", "train": {"lr": -1.0}}
    with pytest.raises(ConfigError, match="the run of task 'a' with method 'lora_neg': train.lr must be > 0"):
        resolve_run(cfg, "a", "lora_neg", 0)


def test_another_data_source_starts_its_options_afresh():
    """vtab1k.yaml's data.root means nothing to the hf source of vtab1k_hf.yaml; paper.yaml's torchvision
    options mean nothing to its resisc45 override (hf)."""
    hf = load_config(ROOT / "configs" / "vtab1k_hf.yaml")["data"]
    assert hf["source"] == "hf" and "root" not in hf and hf["path"] == "fw407/vtab-1k_{task}"
    paper = load_config(ROOT / "configs" / "paper.yaml", ["data.root=/tv"])
    resisc = resolve_run(paper, "resisc45", "aurora", 0)["data"]
    assert resisc["source"] == "hf" and "download" not in resisc and "root" not in resisc
    assert resisc["hflip"] is True  # common options carry over
    assert resolve_run(paper, "pets", "aurora", 0)["data"]["root"] == "/tv"
    folder = load_config(SMALL, ["data.source=folder", "data.root=/own"])
    assert folder["data"]["source"] == "folder" and folder["data"]["root"] == "/own"


def test_required_data_options_are_checked_before_a_sweep_starts(tmp_path):
    cfg = load_config(ROOT / "configs" / "vtab1k.yaml")  # loads without data.root: `aurora-bench list` shows it
    with pytest.raises(ConfigError, match="data.source 'vtab' needs data.root"):
        require_ready(cfg)
    with pytest.raises(DataError, match=f"data.root {tmp_path / 'nowhere'} does not exist"):
        require_ready(load_config(ROOT / "configs" / "vtab1k.yaml", [f"data.root={tmp_path / 'nowhere'}"]))
    for task in ("cifar", "dtd"):
        vtab_task(tmp_path, task)
    require_ready(load_config(ROOT / "configs" / "vtab1k.yaml", [f"data.root={tmp_path}", "tasks=[cifar,dtd]"]))
    with pytest.raises(DataError, match="no folder for task 'dtdd' .*did you mean 'dtd'"):
        require_ready(load_config(ROOT / "configs" / "vtab1k.yaml", [f"data.root={tmp_path}", "tasks=[cifar,dtdd]"]))


@pytest.mark.parametrize("path", sorted((ROOT / "configs").glob("*.yaml")), ids=lambda p: p.name)
def test_shipped_configs_load_through_the_schema(path):
    text = yaml.safe_load(path.read_text())
    if "name" not in text:  # a fragment (rates `aurora-bench tune` wrote, shared variants): loads inside its includers
        includers = [p for p in path.parent.glob("*.yaml")
                     if path.name in (yaml.safe_load(p.read_text()).get("include") or [])]
        assert includers
        for p in includers:
            cfg = load_config(p)
            assert set(text.get("lrs") or {}) <= set(cfg["lrs"])
            assert set(text.get("method_overrides") or {}) <= set(cfg["method_overrides"])
        return
    cfg = load_config(path)
    runs = [resolve_run(cfg, t, m, s) for t in cfg["tasks"] for m in cfg["methods"] for s in cfg["seeds"]]
    assert runs and all(r["train"]["lr"] > 0 for r in runs)


def test_the_demo_config_loads_through_the_schema():
    from aurora_bench.demo import load_demo_config
    cfg, pretrain = load_demo_config(["seeds=[0]"])
    assert cfg["data"]["source"] == "digits" and "root" not in cfg["data"] and pretrain["epochs"] > 0
    require_ready(cfg)
