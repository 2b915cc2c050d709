"""The one checkpoint format (:mod:`scregnet.checkpoint`): each model's save/load round trip, and
the files it refuses (another model's, another version, a pickled object that is not plain data)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from scregnet import checkpoint
from scregnet.errors import InputError


def _same_weights(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert list(sa) == list(sb) and sa
    for name in sa:
        assert torch.equal(sa[name], sb[name]), name


def _randomised(model: nn.Module) -> nn.Module:
    """Weights unlike a fresh model's, so a round trip that dropped them would fail."""
    torch.manual_seed(7)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn_like(p))
    return model.eval()


def test_impute_round_trip(tmp_path: Path) -> None:
    from scregnet.impute.api import ImputeResult, _model_from_checkpoint, load_checkpoint
    from scregnet.impute.api import save_checkpoint as save_impute
    from scregnet.impute.model import ImputeConfig, ScDTL

    mcfg = ImputeConfig(n_genes=40, hidden_dim=16, latent_dim=4, n_neighbours=3)
    model = _randomised(ScDTL(mcfg))
    genes = [f"g{i}" for i in range(40)]
    config = {"model": mcfg.as_dict(), "seed": 3, "target_sum": np.float64(1e4)}
    result = ImputeResult(adata=None, model=model, genes=genes, config=config)  # type: ignore[arg-type]
    path = tmp_path / "s.imputed.model.pt"
    save_impute(result, path)
    ckpt = load_checkpoint(path)
    assert ckpt["kind"] == "scregnet.impute" and ckpt["genes"] == genes
    assert ckpt["config"]["target_sum"] == 1e4 and type(ckpt["config"]["target_sum"]) is float
    _same_weights(model, _model_from_checkpoint(ckpt, path))


def test_tfbind_round_trip(tmp_path: Path) -> None:
    from scregnet.tfbind.checkpoint import load_checkpoint, save_checkpoint
    from scregnet.tfbind.model import ModelConfig, ScFAN
    from scregnet.tfbind.motifs import Motif
    from scregnet.tfbind.train import TrainConfig

    mc = ModelConfig(n_tfs=2, window=200, filters=(8, 8, 8), hidden=16)
    model = _randomised(ScFAN(mc))
    motif = Motif("MA0001.1", "CTCF", np.full((6, 4), 2.0))
    path = tmp_path / "m.pt"
    save_checkpoint(
        path,
        model=model,
        model_config=mc,
        config=TrainConfig(window=200, filters=(8, 8, 8), hidden=16, seed=5),
        tfs=["CTCF", "GATA1"],
        chrom_sizes={"chr1": 5000, "chr2": 4000},
        test_chroms=["chr2"],
        val_chroms=["chr1"],
        cell_types=["K562"],
        metrics={"test_mean_auroc": np.float32(0.75), "history": [{"epoch": 1}]},
        motifs=[motif],
        motif_tfs=["CTCF"],
    )
    loaded = load_checkpoint(path, chrom_sizes={"chr1": 5000}, window=200)
    _same_weights(model, loaded.model)
    assert loaded.tfs == ["CTCF", "GATA1"] and loaded.window == 200 and loaded.bin_size == 200
    assert loaded.checkpoint["config"]["seed"] == 5
    assert loaded.checkpoint["metrics"]["test_mean_auroc"] == pytest.approx(0.75)
    assert [m.name for m in loaded.motifs()] == ["CTCF"] and loaded.motif_tf_index() == [0]
    np.testing.assert_array_equal(loaded.motifs()[0].counts, motif.counts)


def test_grn_round_trip(tmp_path: Path) -> None:
    from scregnet.grn.model import DeepMCL, GRNConfig, load_checkpoint, save_checkpoint

    model = _randomised(DeepMCL(GRNConfig(n_bins=8, embed_dim=8, hidden=8, n_neighbours=2)))
    path = tmp_path / "grn.pt"
    save_checkpoint(model, path, tfs=["A", "B"])
    loaded, ckpt = load_checkpoint(path)
    assert loaded.config == model.config and ckpt["tfs"] == ["A", "B"]
    _same_weights(model, loaded)
    assert not loaded.training


def _one_line(err: pytest.ExceptionInfo[InputError], path: Path) -> str:
    line = str(err.value)
    assert "\n" not in line and str(path) in line
    return line


def test_another_models_checkpoint_is_refused(tmp_path: Path) -> None:
    from scregnet.grn.model import DeepMCL, GRNConfig
    from scregnet.grn.model import save_checkpoint as save_grn
    from scregnet.impute.api import load_checkpoint as load_impute
    from scregnet.tfbind.checkpoint import load_checkpoint as load_tfbind

    path = tmp_path / "grn.pt"
    save_grn(DeepMCL(GRNConfig(n_bins=8, embed_dim=8, hidden=8)), path)
    with pytest.raises(InputError) as err:
        load_impute(path)
    assert "a scregnet.grn checkpoint, not a scregnet.impute one" in _one_line(err, path)
    with pytest.raises(InputError) as err:
        load_tfbind(path)
    assert "not a scregnet.tfbind one" in _one_line(err, path)


def test_another_version_is_refused(tmp_path: Path) -> None:
    path = checkpoint.save(tmp_path / "old.pt", "scregnet.grn", 0, {}, {})
    with pytest.raises(InputError) as err:
        checkpoint.load(path, "scregnet.grn", 1)
    assert "version 0 is not supported (expected 1)" in _one_line(err, path)


def test_missing_fields_and_missing_file_are_refused(tmp_path: Path) -> None:
    path = tmp_path / "legacy.pt"
    torch.save({"format": 3, "state_dict": {}}, path)
    with pytest.raises(InputError) as err:
        checkpoint.load(path, "scregnet.impute", 3)
    assert "needs the fields kind, version, config, state_dict" in _one_line(err, path)
    with pytest.raises(InputError) as err:
        checkpoint.load(tmp_path / "absent.pt", "scregnet.impute", 3)
    assert "does not exist" in _one_line(err, tmp_path / "absent.pt")


def test_a_truncated_checkpoint_is_refused(tmp_path: Path) -> None:
    """A copy cut short: torch's archive reader raises OSError (EINVAL), read as a corrupt file,
    not as a disk error (an internal error naming no file)."""
    whole = checkpoint.save(tmp_path / "m.pt", "scregnet.test", 1, {}, {"w": torch.ones(4096)})
    data = whole.read_bytes()
    for size in (len(data) // 2, 2000, 100):
        cut = tmp_path / f"cut{size}.pt"
        cut.write_bytes(data[:size])
        with pytest.raises(InputError) as err:
            checkpoint.load(cut, "scregnet.test", 1)
        assert "not a readable scregnet.test checkpoint: it is truncated" in _one_line(err, cut)


class _Payload:
    """A pickled object that runs code when unpickled (writes a marker file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (Path.touch, (self.marker,))


def test_pickled_object_is_refused_without_running_it(tmp_path: Path) -> None:
    marker = tmp_path / "ran"
    path = tmp_path / "evil.pt"
    payload = {"kind": "scregnet.grn", "version": 1, "config": _Payload(marker), "state_dict": {}}
    torch.save(payload, path)
    with pytest.raises(InputError) as err:
        checkpoint.load(path, "scregnet.grn", 1)
    assert "holds objects other than tensors and plain data" in _one_line(err, path)
    assert not marker.exists()
    torch.load(path, weights_only=False)  # what weights_only=True guards against
    assert marker.exists()


@dataclass
class _Config:
    sizes: tuple[int, ...] = (1, 2)
    path: Path = Path("a/b")
    scale: Any = None
    values: Any = None


def test_config_is_stored_as_plain_data(tmp_path: Path) -> None:
    config = _Config(scale=np.float32(0.5), values=np.arange(3))
    path = checkpoint.save(tmp_path / "c.pt", "scregnet.test", 1, config, {"w": torch.ones(2)})
    ckpt = checkpoint.load(path, "scregnet.test", 1)
    assert ckpt["config"] == {"sizes": (1, 2), "path": "a/b", "scale": 0.5, "values": [0, 1, 2]}
    assert torch.equal(ckpt["state_dict"]["w"], torch.ones(2))


def _rezip(path: Path, dest: Path, change: Any) -> None:
    """A copy of torch's archive ``path`` with each member's bytes passed through ``change(name,
    data)``: a valid archive (fresh CRCs) whose contents differ, as a file damaged before it was
    archived again, or by a tool that rewrote it, reads."""
    import zipfile

    with zipfile.ZipFile(path) as src, zipfile.ZipFile(dest, "w", zipfile.ZIP_STORED) as out:
        for info in src.infolist():
            out.writestr(info, change(info.filename, src.read(info.filename)))


def test_a_damaged_checkpoint_is_refused(tmp_path: Path) -> None:
    """torch does not check its archive's contents: a weight changed on disk loads as it is. The
    digest written with the checkpoint tells; a checkpoint without one still loads."""
    import zipfile

    from scregnet.grn.model import DeepMCL, GRNConfig, load_checkpoint, save_checkpoint

    model = _randomised(DeepMCL(GRNConfig(n_bins=8, embed_dim=8, hidden=8, n_neighbours=2)))
    path = tmp_path / "grn.pt"
    save_checkpoint(model, path, tfs=["A", "B"])
    with zipfile.ZipFile(path) as archive:
        data = [i for i in archive.infolist() if "/data/" in i.filename]
        largest = max(data, key=lambda i: i.file_size).filename

    def flip(name: str, data: bytes) -> bytes:
        if name != largest:
            return data
        damaged = bytearray(data)
        damaged[len(damaged) // 2] ^= 0x40
        return bytes(damaged)

    damaged = tmp_path / "damaged.pt"
    _rezip(path, damaged, flip)
    raw = torch.load(damaged, weights_only=True)  # torch itself reads it without complaint
    assert any(not torch.equal(raw["state_dict"][k], v) for k, v in model.state_dict().items())
    with pytest.raises(InputError) as err:
        load_checkpoint(damaged)
    assert "checkpoint is damaged" in _one_line(err, damaged)
    unchanged = tmp_path / "copy.pt"
    _rezip(path, unchanged, lambda _name, data: data)
    _same_weights(model, load_checkpoint(unchanged)[0])
    # written before checkpoints carried a digest: read as it is
    legacy = tmp_path / "legacy.pt"
    ckpt = torch.load(path, weights_only=True)
    del ckpt["digest"]
    torch.save(ckpt, legacy)
    _same_weights(model, load_checkpoint(legacy)[0])
