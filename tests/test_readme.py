"""The README's library snippet runs as written, offline: with a local weights file in place of the hub, and with
pretrained=False (no file), its assertion holding both ways."""
import re
from pathlib import Path

import pytest
import timm
from safetensors.torch import save_file

README = Path(__file__).parent.parent / "README.md"


@pytest.mark.slow
@pytest.mark.parametrize("pretrained", [True, False])
def test_readme_library_snippet_runs(tmp_path, monkeypatch, pretrained):
    snippet = re.search(r"## Library\n\n```python\n(.*?)```", README.read_text(), re.S).group(1)
    monkeypatch.chdir(tmp_path)
    if pretrained:
        base = timm.create_model("vit_small_patch16_224", num_classes=0)  # random weights stand in for the hub's
        save_file({k: v.contiguous() for k, v in base.state_dict().items()}, str(tmp_path / "model.safetensors"))
    else:
        assert "pretrained=True" in snippet
        snippet = snippet.replace("pretrained=True", "pretrained=False")
    exec(compile(snippet, str(README), "exec"), {})
    assert (tmp_path / "run" / "adapter" / "adapter_model.safetensors").is_file()
    assert (tmp_path / "run" / "peft" / "adapter_config.json").is_file()
