import pickle

import pytest
import torch

from kdistill.engine.checkpoint import (
    atomic_write_bytes,
    load_model,
    load_state_dict,
    load_tensors,
    optimizer_from_tensors,
    optimizer_to_tensors,
    save_model,
    save_tensors,
)
from kdistill.errors import KDistillError
from kdistill.models import create_model


def test_tensors_and_metadata_round_trip(tmp_path):
    path = tmp_path / "c.safetensors"
    save_tensors(
        path, {"a": torch.arange(6).reshape(2, 3).t()}, {"epoch": 3, "nested": {"x": [1, 2]}}
    )
    tensors, metadata = load_tensors(path)
    torch.testing.assert_close(tensors["a"], torch.arange(6).reshape(2, 3).t())
    assert metadata == {"epoch": 3, "nested": {"x": [1, 2]}}
    assert (tmp_path / "c.json").exists()


def test_atomic_write_leaves_old_file_when_writing_fails(tmp_path):
    path = tmp_path / "f.bin"
    atomic_write_bytes(path, b"old")

    with pytest.raises(TypeError):
        atomic_write_bytes(path, object())  # type: ignore[arg-type]
    assert path.read_bytes() == b"old"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_model_file_rebuilds_from_its_recipe(tmp_path):
    model = create_model("mlp", hidden_sizes=[16], num_classes=10)
    save_model(tmp_path / "m.safetensors", model, {"name": "mlp", "kwargs": {"hidden_sizes": [16]}})
    loaded, metadata = load_model(tmp_path / "m.safetensors")
    assert metadata["recipe"]["kwargs"] == {"hidden_sizes": [16]}
    for (name, a), (_, b) in zip(
        model.state_dict().items(), loaded.state_dict().items(), strict=True
    ):
        torch.testing.assert_close(a, b, msg=name)


def test_missing_recipe_and_wrong_shapes_are_one_line_errors(tmp_path):
    model = create_model("mlp", hidden_sizes=[16])
    save_model(tmp_path / "m.safetensors", model, None)
    with pytest.raises(KDistillError, match="does not say how to build"):
        load_model(tmp_path / "m.safetensors")
    with pytest.raises(KDistillError, match="does not fit model mlp"):
        load_model(tmp_path / "m.safetensors", {"name": "mlp", "kwargs": {"hidden_sizes": [32]}})


def test_corrupt_and_missing_files(tmp_path):
    (tmp_path / "bad.safetensors").write_bytes(b"\x10\x00\x00\x00\x00\x00\x00\x00{not json")
    with pytest.raises(KDistillError, match="not a readable safetensors"):
        load_tensors(tmp_path / "bad.safetensors")
    with pytest.raises(KDistillError, match="does not exist"):
        load_tensors(tmp_path / "none.safetensors")


class _Exploit:
    def __reduce__(self):
        return (print, ("this must never run",))


def test_pt_files_load_weights_only_and_refuse_code(tmp_path):
    model = create_model("mlp", hidden_sizes=[8])
    torch.save(model.state_dict(), tmp_path / "ok.pt")
    state, _ = load_state_dict(tmp_path / "ok.pt")
    assert set(state) == set(model.state_dict())
    (tmp_path / "evil.pt").write_bytes(pickle.dumps({"w": _Exploit()}))
    with pytest.raises(KDistillError, match="cannot be loaded as plain weights"):
        load_state_dict(tmp_path / "evil.pt")


def test_optimizer_state_round_trip():
    model = torch.nn.Linear(3, 2)
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.01)
    model(torch.ones(4, 3)).sum().backward()
    optimizer.step()
    tensors, saved = optimizer_to_tensors(optimizer)
    fresh = torch.optim.AdamW(model.parameters(), lr=0.5)
    optimizer_from_tensors(fresh, tensors, saved)
    assert fresh.param_groups[0]["lr"] == 0.01
    for key in ("exp_avg", "exp_avg_sq"):
        torch.testing.assert_close(
            fresh.state[model.weight][key], optimizer.state[model.weight][key]
        )
