"""Model files and resume checkpoints: atomic, byte-identical for equal content, refused when they do
not fit the step that reads them."""

import pytest
import torch

from pdarts.checkpoints import (
    CHECKPOINT_FORMAT,
    CheckpointSaver,
    fingerprint,
    load_model_file,
    load_resume_state,
    remove_checkpoint,
    save_torch_file,
)
from pdarts.errors import PdartsError


def test_equal_payloads_give_equal_bytes_and_no_temporary_file_is_left(tmp_path):
    payload = {"state_dict": {"w": torch.arange(4.0)}, "network": {"family": "cifar"}}
    save_torch_file(tmp_path / "a.pt", payload)
    save_torch_file(tmp_path / "b.pt", payload)
    assert (tmp_path / "a.pt").read_bytes() == (tmp_path / "b.pt").read_bytes()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.pt", "b.pt"]
    assert torch.equal(load_model_file(tmp_path / "a.pt")["state_dict"]["w"], torch.arange(4.0))


def test_a_model_file_must_hold_weights_and_a_network(tmp_path):
    with pytest.raises(PdartsError, match="does not exist; run the step that trains it first"):
        load_model_file(tmp_path / "missing.pt")
    save_torch_file(tmp_path / "m.pt", {"state_dict": {}})
    with pytest.raises(PdartsError, match="is not a pdarts model file"):
        load_model_file(tmp_path / "m.pt")


def test_a_checkpoint_resumes_only_the_settings_it_was_written_for(tmp_path):
    path = tmp_path / "ckpt.pt"
    expected = fingerprint({"epochs": 3}, "data")
    assert load_resume_state(path, expected) is None  # nothing to resume: start afresh
    saver = CheckpointSaver(path, expected)
    saver({"rng": {}, "history": [{"epoch": 0}], "model": {}})
    assert set(saver.cost()) == {"checkpoint_seconds", "checkpoint_mb"}
    assert load_resume_state(path, expected, ("model",))["history"] == [{"epoch": 0}]
    with pytest.raises(PdartsError, match="was written for other settings or data"):
        load_resume_state(path, fingerprint({"epochs": 4}, "data"))
    with pytest.raises(PdartsError, match=r"is damaged \(no optimizer\)"):
        load_resume_state(path, expected, ("optimizer",))
    save_torch_file(path, {"format": CHECKPOINT_FORMAT - 1, "fingerprint": expected, "state": {}})
    with pytest.raises(PdartsError, match="written by another pdarts version"):
        load_resume_state(path, expected)


def test_a_write_cut_short_is_cleaned_up_and_a_finished_step_removes_its_checkpoint(tmp_path):
    path = tmp_path / "ckpt.pt"
    stale = tmp_path / ".ckpt.pt.x1y2.tmp"
    stale.write_bytes(b"half")
    assert load_resume_state(path, "f") is None and not stale.exists()
    path.write_bytes(b"x")
    remove_checkpoint(path, keep=True)
    assert path.exists()
    remove_checkpoint(path, keep=False)
    assert not path.exists()
