"""docs/runs.md's promise that any tool reads a run without neuralab, for the one case that
needs a line of its own: a model whose layers share a weight, which safetensors stores once."""

import re
from pathlib import Path

import torch

from neuralab import load_classifier
from test_model_sources import TIED_NET, _cli, _shapes_folder

DOCS = Path(__file__).resolve().parents[1] / "docs" / "runs.md"


def test_the_documented_lines_load_a_tied_models_weights_with_safetensors_alone(tmp_path, capsys):
    data = _shapes_folder(tmp_path / "pictures")
    (tmp_path / "tied.py").write_text(TIED_NET)
    code, _, err = _cli(capsys, "train", "--model", tmp_path / "tied.py", "--data", data, "--epochs", "1",
                        "--out", tmp_path / "run", "--quiet")
    assert code == 0, err
    block = re.search(r"restores those names first:\n\n```python\n(.*?)```", DOCS.read_text(), re.S).group(1)
    namespace: dict = {}
    exec(compile(TIED_NET, "tied.py", "exec"), namespace)  # the test's own module, as the user holds it
    model = namespace["Net"]()
    exec(block.replace("RUN/", f"{tmp_path / 'run'}/"), {"model": model})  # load_state_dict is strict
    trained = load_classifier(tmp_path / "run", trust_code=True).model.eval()
    x = torch.rand(5, 1, 16, 16)
    with torch.no_grad():
        assert torch.equal(model.eval()(x), trained(x))
