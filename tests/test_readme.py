"""The README's library snippet runs as written, with local weights in place of the hub."""
import re
from pathlib import Path

import pytest
import timm
from safetensors.torch import save_file

README = Path(__file__).parent.parent / "README.md"


@pytest.mark.slow
def test_readme_library_snippet_runs(tmp_path, monkeypatch):
    snippet = re.search(r"## Library\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    base = timm.create_model("vit_small_patch16_224", num_classes=0)  # random weights stand in for the hub's
    save_file({k: v.contiguous() for k, v in base.state_dict().items()}, str(tmp_path / "vit_small.safetensors"))
    monkeypatch.chdir(tmp_path)
    exec(compile(snippet, str(README), "exec"), {})
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "run" / "peft" / "adapter_config.json").is_file()
