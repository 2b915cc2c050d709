"""TF-binding training resumes from its per-epoch state (`scregnet tfbind train --state`): a run
killed after some epochs and started again trains only the missing epochs and ends with exactly
the weights of an uninterrupted run (TFBIND_TRAIN on a reclaimed spot VM)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn
from torch.utils.data import Dataset

from scregnet.tfbind.train import TrainConfig, fit

N, EPOCHS = 48, 4


class Windows(Dataset[tuple[torch.Tensor, torch.Tensor]]):
    """Random one-hot-like windows with 3 TF labels; counts reads, can fail at a given read."""

    def __init__(self, seed: int, *, fail_at: int | None = None) -> None:
        g = torch.Generator().manual_seed(seed)
        self.x = torch.rand(N, 4, 24, generator=g)
        self.y = (torch.rand(N, 3, generator=g) > 0.6).float()
        self.reads, self.fail_at = 0, fail_at

    def __len__(self) -> int:
        return N

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        self.reads += 1
        if self.fail_at is not None and self.reads > self.fail_at:
            raise KeyboardInterrupt  # the task is killed
        return self.x[i], self.y[i]


def model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(
        nn.Conv1d(4, 8, 5),
        nn.ReLU(),
        nn.Dropout(0.3),
        nn.AdaptiveMaxPool1d(1),
        nn.Flatten(),
        nn.Linear(8, 3),
    )


CONFIG = TrainConfig(epochs=EPOCHS, patience=10, batch_size=8, lr=1e-2, use_accessibility=False)


def run(
    train_set: Windows, state: Path | None, config: TrainConfig = CONFIG, inputs: str = ""
) -> tuple[nn.Module, Any]:
    net = model()
    result = fit(
        net,
        train_set,
        Windows(1),
        pos_weight=torch.ones(3),
        config=config,
        device=torch.device("cpu"),
        generator=torch.Generator().manual_seed(0),
        state=state,
        inputs=inputs,
    )
    return net, result


def same_weights(a: nn.Module, b: nn.Module) -> bool:
    return all(
        torch.equal(x, y)
        for x, y in zip(a.state_dict().values(), b.state_dict().values(), strict=True)
    )


def test_a_killed_training_resumes_and_ends_as_an_uninterrupted_one(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    reference, ref_result = run(Windows(0), None)
    state = tmp_path / "tfbind_train.state"
    with pytest.raises(KeyboardInterrupt):
        run(Windows(0, fail_at=2 * N + 5), state)  # killed during epoch 3
    assert state.exists()
    again = Windows(0)
    resumed, result = run(again, state)
    assert again.reads == (EPOCHS - 2) * N  # only epochs 3 and 4 were trained again
    assert same_weights(resumed, reference)
    assert result["history"] == ref_result["history"]


def test_a_state_from_another_configuration_is_ignored(tmp_path: Path) -> None:
    torch.set_num_threads(1)
    state = tmp_path / "tfbind_train.state"
    other = TrainConfig(epochs=EPOCHS, patience=10, batch_size=8, lr=5e-3, use_accessibility=False)
    with pytest.raises(KeyboardInterrupt):
        run(Windows(0, fail_at=2 * N + 5), state, other)
    again = Windows(0)
    resumed, _ = run(again, state)
    assert again.reads == EPOCHS * N  # started over
    assert same_weights(resumed, run(Windows(0), None)[0])


@pytest.mark.parametrize("content", [b"tf\n", b"garbage", b"PK\x03\x04 not a zip", b""])
def test_an_unreadable_state_is_ignored_with_a_warning(
    content: bytes, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Whatever a state file holds that torch cannot read (text, a truncated or foreign file),
    training starts over with one warning line and ends with the weights of a run without it."""
    torch.set_num_threads(1)
    state = tmp_path / "tfbind_train.state"
    state.write_bytes(content)
    again = Windows(0)
    with caplog.at_level("WARNING", logger="scregnet"):
        resumed, _ = run(again, state)
    assert again.reads == EPOCHS * N  # started over
    warned = [r.getMessage() for r in caplog.records if "unreadable training state" in r.message]
    assert len(warned) == 1 and "\n" not in warned[0]
    assert same_weights(resumed, run(Windows(0), None)[0])


def test_a_state_written_before_an_input_changed_is_ignored(tmp_path: Path) -> None:
    """A rerun after an input file changed (a motif file edited: same windows, other bases or
    channels) trains from the start instead of from weights fitted to the old inputs."""
    from scregnet.tfbind.api import _input_files_identity
    from scregnet.tfbind.data import BulkTrack

    torch.set_num_threads(1)
    files = {
        name: tmp_path / name for name in ("g.fa", "g.fa.fai", "s.csv", "a.bw", "c.bed", "m.jaspar")
    }
    for path in files.values():
        path.write_text("x\n")
    track = BulkTrack("A", files["a.bw"], {"CTCF": files["c.bed"]})
    before = _input_files_identity(files["g.fa"], files["s.csv"], [track], str(files["m.jaspar"]))
    assert before == _input_files_identity(
        files["g.fa"], files["s.csv"], [track], str(files["m.jaspar"])
    )
    files["m.jaspar"].write_text("edited motif\n")
    after = _input_files_identity(files["g.fa"], files["s.csv"], [track], str(files["m.jaspar"]))
    assert after != before
    state = tmp_path / "tfbind_train.state"
    with pytest.raises(KeyboardInterrupt):
        run(Windows(0, fail_at=2 * N + 5), state, inputs=before)
    again = Windows(0)
    run(again, state, inputs=after)
    assert again.reads == EPOCHS * N  # started over


def test_the_command_refuses_a_state_path_holding_another_file(tmp_path: Path) -> None:
    """`tfbind train --state model.pt` (a model, or any file that is not a training state) is
    refused before training, and the file kept: the state is overwritten and removed at the end."""
    from scregnet.errors import InputError
    from scregnet.tfbind.train import check_state_file

    torch.set_num_threads(1)
    model = tmp_path / "model.pt"
    torch.save({"model_state": nn.Linear(2, 1).state_dict(), "tfs": ["CTCF"]}, model)
    text = tmp_path / "genes.gtf"
    text.write_text('chr1\tx\tgene\t1\t10\t.\t+\t.\tgene_id "G";\n')
    for path in (model, text):
        before = path.read_bytes()
        with pytest.raises(InputError, match="is not a training state of `scregnet tfbind train`"):
            check_state_file(path)
        assert path.read_bytes() == before
    state = tmp_path / "tfbind_train.state"
    check_state_file(state)  # none yet
    with pytest.raises(KeyboardInterrupt):
        run(Windows(0, fail_at=2 * N + 5), state)  # killed during epoch 3
    check_state_file(state)  # its own state: resumed
