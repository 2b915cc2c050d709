"""``scregnet tfbind train|predict|merge`` end to end on a small synthetic world (_tfbind_synth)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import anndata as ad
import numpy as np
import pandas as pd
import pyBigWig
import pytest
import torch
from _tfbind_synth import CHROM_LEN, CHROMS, Synth, build

from scregnet.cli import main as cli
from scregnet.evaluate.score_tfbind import score

FAST = ["--filters", "16,24,24", "--hidden", "32", "--device", "cpu", "--threads", "1"]


@pytest.fixture(scope="module")
def synth(tmp_path_factory: pytest.TempPathFactory) -> Synth:
    return build(tmp_path_factory.mktemp("tfbind") / "world")


@pytest.fixture(scope="module")
def model(synth: Synth) -> Path:
    out = synth.root / "model.pt"
    argv = ["tfbind", "train", "--fasta", str(synth.fasta), "--bulk", str(synth.bulk_sheet)]
    argv += ["--motifs", str(synth.motifs)]
    code = cli.main([*argv, "--out", str(out), *FAST, "--epochs", "12", "--lr", "3e-3"])
    assert code == 0
    return out


def _predict(synth: Synth, model: Path, out: Path, *extra: str) -> int:
    return cli.main(
        [
            "tfbind",
            "predict",
            "--model",
            str(model),
            "--fasta",
            str(synth.fasta),
            "--atac",
            str(synth.atac),
            "--fragments",
            str(synth.fragments),
            "--motifs",
            str(synth.motifs),
            "--out",
            str(out),
            "--device",
            "cpu",
            *extra,
        ]
    )


@pytest.fixture(scope="module")
def predicted(synth: Synth, model: Path) -> Path:
    out = synth.root / "results" / "tfbind" / "S.tfbind.h5ad"
    assert _predict(synth, model, out) == 0
    return out


def _one_error_line(capsys: pytest.CaptureFixture[str], *needles: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    for needle in needles:
        assert needle in err[0], err[0]
    return err[0]


def test_checkpoint_carries_what_prediction_needs(model: Path) -> None:
    ckpt = torch.load(model, map_location="cpu", weights_only=True)
    assert ckpt["tfs"] == ["CTCF", "GATA1"]
    assert ckpt["window"] == 1000 and ckpt["bin_size"] == 200
    assert list(ckpt["chrom_sizes"]) == CHROMS
    assert ckpt["test_chroms"] == ["chr4", "chr5"] and ckpt["val_chroms"] == ["chr6"]
    assert ckpt["config"]["filters"] == (16, 24, 24) and ckpt["config"]["epochs"] == 12
    assert ckpt["model_config"]["use_accessibility"] is True
    # motif tracks and context from the given motif file, carried for prediction
    assert ckpt["model_config"]["n_motifs"] == 2 and ckpt["model_config"]["use_context"] is True
    assert [m["motif_id"] for m in ckpt["motifs"]] == ["MA9000.1", "MA9001.1"]
    assert ckpt["motif_tfs"] == ["CTCF", "GATA1"]
    # GATA1 is active in typeA only: its motif regions are more accessible there than in typeB
    context = np.asarray(ckpt["bulk_context"])
    assert context[0, 1] > context[1, 1] + 0.1, context
    # the held-out windows were scored and the model learned something there
    assert ckpt["metrics"]["test_mean_auroc"] > 0.8


def test_predict_outputs(predicted: Path, synth: Synth) -> None:
    result = ad.read_h5ad(predicted)
    atac = ad.read_h5ad(synth.atac)
    assert result.shape == (atac.n_obs, 2)
    assert list(result.obs_names) == list(atac.obs_names)
    u = result.uns["tfbind"]
    assert u["binding"].shape == (2, atac.n_vars, 2) == u["pwm_binding"].shape
    assert ((u["binding"] >= 0) & (u["binding"] <= 1)).all()
    assert result.obsm["chromvar"].shape == (atac.n_obs, 2)
    assert set(result.layers) == {"scfan_activity", "bound_peak_deviation", "mean_binding"}
    np.testing.assert_array_equal(result.layers["bound_peak_deviation"], result.X)
    # with two TFs both are among every peak's top 2: scFAN activity is 1 for a cell with a read
    has_read = np.asarray(atac.X.sum(axis=1)).ravel() > 0
    np.testing.assert_allclose(result.layers["scfan_activity"][has_read], 1.0)
    tracks = predicted.parent / "S"
    assert sorted(p.name for p in tracks.iterdir() if not p.name.startswith(".")) == [
        "0.binding.bed",
        "0.binding.bw",
        "1.binding.bed",
        "1.binding.bw",
    ]
    bed = pd.read_csv(tracks / "0.binding.bed", sep="\t", header=None)
    assert len(bed) == int((u["binding"][0] >= 0.5).sum())
    assert set(bed[3]) <= {"CTCF", "GATA1"} and (bed[4] >= 500).all()
    bw = pyBigWig.open(str(tracks / "1.binding.bw"))
    peaks = u["peaks"]
    i = int(np.argmax(u["binding"][1].max(axis=1)))
    value = bw.stats(
        peaks.chrom.iloc[i], int(peaks.start.iloc[i]), int(peaks.end.iloc[i]), type="max"
    )[0]
    assert value == pytest.approx(float(u["binding"][1, i].max()), abs=1e-5)
    assert bw.chroms() == dict.fromkeys(CHROMS, CHROM_LEN)


def test_binding_and_activity_against_truth(predicted: Path, synth: Synth) -> None:
    """The model recovers cell-type-specific binding; activity separates the two cell types."""
    results = predicted.parent.parent
    report = score(synth.root / "truth", results)
    assert report is not None
    assert report["chromosomes"] == ["chr4", "chr5"]
    assert report["auroc"] > 0.7, report
    # open GATA1 sites in typeB (GATA1 inactive there) fool motif x accessibility; the model,
    # which also sees each cluster's TF-activity context, must beat that baseline
    pwm = report["pwm_baseline"]
    assert report["auprc"] >= pwm["auprc"] + 0.05, report
    assert report["auroc"] >= pwm["auroc"], report
    result = ad.read_h5ad(predicted)
    u = result.uns["tfbind"]
    assert report["ari"] >= report["chromvar_baseline"]["ari"] - 0.05
    assert report["ari_mean_binding"] >= report["chromvar_baseline"]["ari"] - 0.05
    assert report["pwm_baseline"]["auroc"] > 0.8  # the planted motifs are found by the scan
    assert u["binding"].shape[0] == 2


def test_shards_merge_exactly(
    predicted: Path,
    synth: Synth,
    model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    shard_a, shard_b = tmp_path / "a.h5ad", tmp_path / "b.h5ad"
    assert _predict(synth, model, shard_a, "--chrom", "chr1,chr2,chr3") == 0
    assert _predict(synth, model, shard_b, "--chrom", "chr4", "--chrom", "chr5,chr6") == 0
    merged = tmp_path / "S.tfbind.h5ad"
    argv = ["tfbind", "merge", "--shards", str(shard_b), str(shard_a), "--atac", str(synth.atac)]
    assert cli.main([*argv, "--out", str(merged)]) == 0
    whole, parts = ad.read_h5ad(predicted), ad.read_h5ad(merged)
    np.testing.assert_allclose(parts.X, whole.X, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(parts.obsm["chromvar"], whole.obsm["chromvar"], rtol=1e-6, atol=1e-7)
    for key in ("binding", "pwm_binding"):
        np.testing.assert_allclose(parts.uns["tfbind"][key], whole.uns["tfbind"][key], atol=1e-6)
    assert (tmp_path / "S" / "0.binding.bw").exists()
    # a missing shard is refused
    code = cli.main([*argv[:3], str(shard_a), *argv[5:], "--out", str(tmp_path / "x.h5ad")])
    assert code == 1 and not (tmp_path / "x.h5ad").exists()
    # shards of other cells or clusters (another sample) are refused by the merge, and shards
    # given another clustered file than the one they were predicted from
    stranger = tmp_path / "stranger.h5ad"
    other = ad.read_h5ad(shard_b)
    other.uns["tfbind_shard"]["cells"] = "0" * 16
    other.write_h5ad(stranger)
    out = ["--out", str(tmp_path / "x.h5ad")]
    assert cli.main([*argv[:3], str(stranger), str(shard_a), *argv[5:], *out]) == 1
    assert "other cells or clusters than" in capsys.readouterr().err
    # a shard predicted again after the model was retrained: another model's digest
    retrained = tmp_path / "retrained.h5ad"
    other = ad.read_h5ad(shard_b)
    assert len(other.uns["tfbind_shard"]["model"]) == 64
    other.uns["tfbind_shard"]["model"] = "f" * 64
    other.write_h5ad(retrained)
    assert cli.main([*argv[:3], str(retrained), str(shard_a), *argv[5:], *out]) == 1
    assert "shard was predicted with another model than" in capsys.readouterr().err
    reclustered = tmp_path / "reclustered.h5ad"
    atac = ad.read_h5ad(synth.atac)
    labels = atac.obs["cluster"].astype(str).to_numpy()
    labels[0] = next(c for c in labels if c != labels[0])
    atac.obs["cluster"] = pd.Categorical(labels)
    atac.write_h5ad(reclustered)
    assert cli.main([*argv[:6], str(reclustered), *out]) == 1
    assert "another ATAC file's cells or clusters" in capsys.readouterr().err
    assert not (tmp_path / "x.h5ad").exists()


def test_merge_when_every_peak_is_on_a_skipped_chromosome(
    synth: Synth, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The only shard has no peak (they all lie on skipped chr1): one line naming the ATAC file
    and the skipped chromosome, no output (before: an internal IndexError)."""
    atac = ad.read_h5ad(synth.atac)
    chr1 = atac[:, (atac.var["chrom"] == "chr1").to_numpy()].copy()
    path = tmp_path / "chr1.clustered.h5ad"
    chr1.write_h5ad(path)
    shard = tmp_path / "chr2.h5ad"
    argv = ["tfbind", "predict", "--model", str(model), "--fasta", str(synth.fasta)]
    argv += ["--atac", str(path), "--fragments", str(synth.fragments), "--device", "cpu"]
    assert cli.main([*argv, "--chrom", "chr2", "--out", str(shard), "--quiet"]) == 0
    assert ad.read_h5ad(shard).n_obs == 0
    capsys.readouterr()
    out = tmp_path / "S.tfbind.h5ad"
    merge = ["tfbind", "merge", "--shards", str(shard), "--atac", str(path), "--out", str(out)]
    assert cli.main([*merge, "--skip-chroms", "chr1", "--quiet"]) == 1
    line = _one_error_line(capsys, "chr1.clustered.h5ad", "left out of prediction (chr1)")
    assert f"all {chr1.n_vars} peaks" in line
    assert not out.exists() and not (tmp_path / "S").exists()


@pytest.mark.parametrize(
    ("flag", "key"),
    [
        (["--neighbors", "3"], "X"),
        (["--no-rc-average"], "binding"),
        (["--chromvar-iterations", "5"], "chromvar"),
        (["--motif-p-value", "1e-3"], "chromvar"),
    ],
)
def test_predict_flags_change_outputs(
    predicted: Path, synth: Synth, model: Path, tmp_path: Path, flag: list[str], key: str
) -> None:
    out = tmp_path / "S.tfbind.h5ad"
    assert _predict(synth, model, out, *flag) == 0
    base, new = ad.read_h5ad(predicted), ad.read_h5ad(out)

    def get(a: ad.AnnData) -> np.ndarray:
        if key == "X":
            return np.asarray(a.X)
        if key == "chromvar":
            return np.asarray(a.obsm["chromvar"])
        return np.asarray(a.uns["tfbind"][key])

    assert not np.allclose(get(base), get(new))


def test_predict_out_of_device_memory_halves_the_batch(
    predicted: Path, synth: Synth, model: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A batch of peaks that runs out of device memory is retried smaller: the same binding."""
    from scregnet.tfbind.model import ScFAN

    real = ScFAN.base_logits
    sizes: list[int] = []

    def small_only(self, x):  # type: ignore[no-untyped-def]
        sizes.append(int(x.shape[0]))
        if x.shape[0] > 3:
            raise torch.OutOfMemoryError("CUDA out of memory")
        return real(self, x)

    monkeypatch.setattr(ScFAN, "base_logits", small_only)
    out = tmp_path / "S.tfbind.h5ad"
    assert _predict(synth, model, out) == 0
    assert max(sizes) > 3 and max(sizes[-5:]) <= 3
    base, new = ad.read_h5ad(predicted), ad.read_h5ad(out)
    np.testing.assert_allclose(np.asarray(new.X), np.asarray(base.X), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(
        np.asarray(new.uns["tfbind"]["binding"]),
        np.asarray(base.uns["tfbind"]["binding"]),
        atol=1e-5,
    )


def test_threshold_and_tracks_outdir(
    predicted: Path, synth: Synth, model: Path, tmp_path: Path
) -> None:
    out = tmp_path / "S.tfbind.h5ad"
    tracks = tmp_path / "elsewhere"
    # a threshold just above the weakest pair called at the default 0.5 drops at least that one
    binding = np.asarray(ad.read_h5ad(predicted).uns["tfbind"]["binding"])[0]
    called = binding[binding >= 0.5]
    assert called.size > 0
    thr = float(np.nextafter(np.float32(called.min()), np.float32(1.0)))
    argv = ["--threshold", repr(thr), "--tracks-outdir", str(tracks)]
    assert _predict(synth, model, out, *argv) == 0
    strict = (tracks / "0.binding.bed").read_text().splitlines()
    default = (predicted.parent / "S" / "0.binding.bed").read_text().splitlines()
    assert len(default) == called.size
    assert len(strict) == int((binding >= thr).sum()) < len(default)
    assert not (tmp_path / "S").exists()


def test_train_flags(synth: Synth, tmp_path: Path) -> None:
    out = tmp_path / "m.pt"
    argv = ["tfbind", "train", "--fasta", str(synth.fasta), "--bulk", str(synth.bulk_sheet)]
    extra = ["--epochs", "1", "--test-chroms", "chr1", "--val-chroms", "chr2", "--no-accessibility"]
    extra += ["--window", "600", "--seed", "3"]
    assert cli.main([*argv, "--out", str(out), *FAST, *extra, "--negative-ratio", "1"]) == 0
    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    assert ckpt["test_chroms"] == ["chr1"] and ckpt["val_chroms"] == ["chr2"]
    assert ckpt["model_config"]["use_accessibility"] is False and ckpt["window"] == 600
    assert ckpt["config"]["seed"] == 3 and ckpt["config"]["negative_ratio"] == 1.0
    n = ckpt["metrics"]["n_windows"]["train"]
    out2 = tmp_path / "m2.pt"
    assert cli.main([*argv, "--out", str(out2), *FAST, *extra]) == 0
    assert (
        torch.load(out2, map_location="cpu", weights_only=True)["metrics"]["n_windows"]["train"] > n
    )


def test_probabilities_are_calibrated(predicted: Path, synth: Synth) -> None:
    """Not every peak is called bound: per TF, the share of (cluster, peak) pairs at or above 0.5
    stays near the true share (the GRN stage's --prior labels threshold at 0.5)."""
    result = ad.read_h5ad(predicted)
    u = result.uns["tfbind"]
    called = (np.asarray(u["binding"]) >= 0.5).mean(axis=(0, 1))
    truth = pd.read_csv(synth.root / "truth" / "tf_binding.tsv.gz", sep="\t")
    true_share = truth[["CTCF", "GATA1"]].to_numpy().mean(axis=0)  # 1/3 and 1/6
    assert (called < 0.6).all() and called.max() > 0.05, called
    np.testing.assert_allclose(called, true_share, atol=0.2)
    ckpt = torch.load(synth.root / "model.pt", map_location="cpu", weights_only=True)
    assert not np.allclose(ckpt["state_dict"]["calib_scale"].numpy(), 1.0)


SMALL = ["--filters", "4,4,4", "--hidden", "4", "--device", "cpu", "--threads", "1"]


def _train_small(synth: Synth, out: Path, *extra: str) -> dict[str, Any]:
    argv = ["tfbind", "train", "--fasta", str(synth.fasta), "--bulk", str(synth.bulk_sheet)]
    code = cli.main([*argv, "--out", str(out), *SMALL, "--epochs", "1", "--quiet", *extra])
    assert code == 0
    ckpt: dict[str, Any] = torch.load(out, map_location="cpu", weights_only=True)
    return ckpt


def _same_state(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> bool:
    return a.keys() == b.keys() and all(
        a[k].shape == b[k].shape and torch.allclose(a[k], b[k]) for k in a
    )


@pytest.fixture(scope="module")
def reference(synth: Synth) -> dict[str, Any]:
    return _train_small(synth, synth.root / "reference.pt")


def test_train_without_any_motif_warns_and_trains_without_motif_features(
    synth: Synth, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture[str]
) -> None:
    """No motif for any TF: the motif features on by default are dropped with one warning that
    names them, and the model trains (before, the default motif initialisation would raise)."""
    from scregnet.tfbind import api

    monkeypatch.setattr(api, "_load_motifs", lambda config, tfs: {})
    ckpt = _train_small(synth, tmp_path / "m.pt", "--no-context")
    warned = [line for line in capfd.readouterr().err.splitlines() if "no motif for any TF" in line]
    assert len(warned) == 1
    assert warned[0].endswith("training without motif tracks, motif-initialised filters")
    assert ckpt["model_config"]["n_motifs"] == 0
    assert float(ckpt["state_dict"]["features.1.bias"][:4].mean()) > -0.5


@pytest.mark.parametrize(
    "flag",
    [
        ["--max-pos-weight", "1"],
        ["--jitter", "0"],
        ["--no-rc-augment"],
        ["--dropout", "0,0,0"],
        ["--batch-size", "16"],
        ["--lr", "1e-2"],
        ["--step", "100"],
        ["--bin-size", "100"],
        ["--exclude-chroms", "chr3"],
        ["--motifs", "MOTIFS"],
        ["--no-motif-init"],
        ["--no-motif-tracks"],
        ["--no-context"],
        ["--sequence-warmup", "1", "--epochs", "2"],
    ],
)
def test_train_flag_changes_the_model(
    synth: Synth, reference: dict[str, Any], tmp_path: Path, flag: list[str]
) -> None:
    flag = [str(synth.motifs) if f == "MOTIFS" else f for f in flag]
    ckpt = _train_small(synth, tmp_path / "m.pt", *flag)
    state = ckpt["state_dict"]
    assert not _same_state(reference["state_dict"], state), f"{flag} did not change the model"
    config = ckpt["config"]
    if flag[0] == "--step":
        assert ckpt["metrics"]["n_windows"]["train"] > reference["metrics"]["n_windows"]["train"]
    if flag[0] == "--bin-size":
        assert ckpt["bin_size"] == 100
    if flag[0] == "--exclude-chroms":
        assert "chr3" not in {*ckpt["test_chroms"], *ckpt["val_chroms"]}
        assert ckpt["test_chroms"] != reference["test_chroms"]
    if flag[0] == "--motifs":
        # the file's motifs, not pyjaspar's, feed the motif tracks
        assert config["motifs"] == str(synth.motifs)
        assert [m["motif_id"] for m in ckpt["motifs"]] == ["MA9000.1", "MA9001.1"]
        assert [m["motif_id"] for m in reference["motifs"]] != ["MA9000.1", "MA9001.1"]
    if flag[0] == "--no-motif-init":
        # by default two first-block filters per TF hold its motif's log-odds, their batch-norm
        # shift starting at -2 (trained for one epoch); without it they start at random
        assert config["motif_init"] is False and reference["config"]["motif_init"] is True
        assert float(reference["state_dict"]["features.1.bias"][:4].mean()) < -1.0
        assert float(state["features.1.bias"][:4].mean()) > -0.5
    if flag[0] == "--no-motif-tracks":
        assert ckpt["model_config"]["n_motifs"] == 0 and reference["model_config"]["n_motifs"] == 2
        assert ckpt["model_config"]["use_context"] is True
    if flag[0] == "--no-context":
        assert ckpt["model_config"]["use_context"] is False and ckpt["bulk_context"] is None
        assert reference["model_config"]["use_context"] is True
    if flag[0] == "--sequence-warmup":
        history = ckpt["metrics"]["history"]
        assert len(history) == 2 and ckpt["metrics"]["best_epoch"] == 2
        # the reference ran 1 epoch: compare with the same 2 epochs without the warm-up too
        plain = _train_small(synth, tmp_path / "plain.pt", "--epochs", "2")
        assert not _same_state(plain["state_dict"], state), "the warm-up changed nothing"


def test_train_motif_file_errors(
    synth: Synth, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _train_fails(synth, tmp_path, capsys, "--motifs", str(tmp_path / "absent.jaspar"))
    assert "absent.jaspar" in line and "does not exist" in line
    other = tmp_path / "other.jaspar"
    other.write_text(">MA0001.1 FOXO9\nA [ 9 0 ]\nC [ 0 9 ]\nG [ 0 0 ]\nT [ 1 1 ]\n")
    line = _train_fails(synth, tmp_path, capsys, "--motifs", str(other))
    assert "other.jaspar" in line and "no motif" in line and "CTCF" in line


# ---------------------------------------------------------------------------------- bad input


def _train_fails(
    synth: Synth,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
    sheet: Path | None = None,
) -> str:
    out = tmp_path / "bad.pt"
    argv = [
        "tfbind",
        "train",
        "--fasta",
        str(synth.fasta),
        "--bulk",
        str(sheet or synth.bulk_sheet),
    ]
    code = cli.main([*argv, "--out", str(out), *FAST, "--epochs", "1", "--quiet", *extra])
    assert code == 1
    assert not out.exists() and not list(tmp_path.glob(".bad.pt*"))
    return _one_error_line(capsys)


@pytest.mark.parametrize(
    ("flags", "message"),
    [
        (("--dropout", "1.5,0.2,0.2"), "each --dropout must be in [0, 1), got 1.5,0.2,0.2"),
        (("--window", "50", "--bin-size", "50"), "window 50 is too short for 3 convolution"),
        (("--jitter", "600"), "--jitter must be >= 0 and under half the window (1000 bp)"),
    ],
)
def test_untrainable_settings_are_refused_before_training(
    flags: tuple[str, ...],
    message: str,
    synth: Synth,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    """Settings the network cannot train with are input errors, not internal ones."""
    line = _train_fails(synth, tmp_path, capsys, *flags)
    assert message in line and "internal error" not in line, line


def _copy_bulk(synth: Synth, tmp_path: Path) -> Path:
    bulk = tmp_path / "bulk"
    shutil.copytree(synth.bulk_sheet.parent, bulk)
    return bulk


def test_bigwig_with_other_chromosome_names(
    synth: Synth, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bulk = _copy_bulk(synth, tmp_path)
    bw = pyBigWig.open(str(bulk / "typeB.bw"), "w")
    bw.addHeader([(c.removeprefix("chr"), CHROM_LEN) for c in CHROMS])
    bw.addEntries("1", 0, values=[1.0] * 10, span=1, step=1)
    bw.close()
    line = _train_fails(synth, tmp_path, capsys, sheet=bulk / "bulk_sheet.csv")
    assert (
        "typeB.bw" in line
        and "chromosome names differ" in line
        and "chr1" in line
        and "genome.fa" in line
    )


def test_chip_bed_with_other_chromosome_names(
    synth: Synth, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bulk = _copy_bulk(synth, tmp_path)
    (bulk / "typeA.CTCF.chip.bed").write_text("chr1\t100\t300\nchrUn_x\t100\t300\n")
    line = _train_fails(synth, tmp_path, capsys, sheet=bulk / "bulk_sheet.csv")
    assert "typeA.CTCF.chip.bed" in line and "chrUn_x" in line


def test_chip_without_accessibility(
    synth: Synth, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bulk = _copy_bulk(synth, tmp_path)
    sheet = bulk / "bulk_sheet.csv"
    frame = pd.read_csv(sheet)
    frame.loc[frame.tf == "GATA1", "accessibility_bw"] = ""
    frame.to_csv(sheet, index=False)
    line = _train_fails(synth, tmp_path, capsys, sheet=sheet)
    assert "bulk_sheet.csv" in line and "GATA1" in line and "no accessibility track" in line


def test_absent_heldout_chromosome(
    synth: Synth, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _train_fails(synth, tmp_path, capsys, "--test-chroms", "chr21")
    assert "genome.fa" in line and "chr21" in line and "not in the genome" in line


def _sheet_with_untrainable_tfs(synth: Synth, tmp_path: Path, *, keep: bool = True) -> Path:
    """The bulk sheet plus NRF1 (empty ChIP BEDs in typeA and typeB, and a cell type typeC with
    NRF1 only) and YY1 (its peaks only on the validation chromosome chr6); without the sheet's
    own rows unless ``keep``."""
    bulk = _copy_bulk(synth, tmp_path)
    (bulk / "empty.bed").write_text("")
    ctcf = pd.read_csv(bulk / "typeA.CTCF.chip.bed", sep="\t", header=None)
    ctcf[ctcf[0] == "chr6"].to_csv(bulk / "chr6.bed", sep="\t", header=False, index=False)
    sheet = bulk / "bulk_sheet.csv"
    frame = pd.read_csv(sheet) if keep else pd.DataFrame()
    extra = [
        ("NRF1", "empty.bed", "typeA.bw", "typeA"),
        ("NRF1", "empty.bed", "typeB.bw", "typeB"),
        ("NRF1", "empty.bed", "typeB.bw", "typeC"),
        ("YY1", "chr6.bed", "typeA.bw", "typeA"),
    ]
    columns = ["tf", "chip_bed", "accessibility_bw", "cell_type"]
    pd.concat([frame, pd.DataFrame(extra, columns=columns)]).to_csv(sheet, index=False)
    return sheet


def test_tfs_without_enough_positives_are_dropped(
    synth: Synth,
    reference: dict[str, Any],
    tmp_path: Path,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """A TF with too few positive bins to learn and calibrate (none anywhere, or only on the
    validation chromosome) is dropped with one warning naming it and its counts: the model is the
    one the sheet without it gives, and predictions have no column for it (before, it stayed in
    the model uncalibrated and got ~0.3 on every peak)."""
    sheet = _sheet_with_untrainable_tfs(synth, tmp_path)
    out = tmp_path / "m.pt"
    argv = ["tfbind", "train", "--fasta", str(synth.fasta), "--bulk", str(sheet), "--out", str(out)]
    assert cli.main([*argv, *SMALL, "--epochs", "1", "--quiet"]) == 0
    warned = [ln for ln in capfd.readouterr().err.splitlines() if "dropping" in ln]
    assert len(warned) == 1, warned
    assert "WARNING" in warned[0] and "dropping 2 of 4 TF(s) with fewer than 5" in warned[0]
    assert "NRF1 (train 0, validation 0)" in warned[0] and "YY1 (train 0, validation " in warned[0]
    assert "typeC" in warned[0]
    ckpt = torch.load(out, map_location="cpu", weights_only=True)
    assert ckpt["tfs"] == ["CTCF", "GATA1"] and ckpt["cell_types"] == ["typeA", "typeB"]
    dropped = ckpt["metrics"]["dropped_tfs"]
    assert list(dropped) == ["NRF1", "YY1"] and dropped["NRF1"] == {"train": 0, "validation": 0}
    assert dropped["YY1"]["train"] == 0 and dropped["YY1"]["validation"] >= 5
    assert _same_state(reference["state_dict"], ckpt["state_dict"])
    assert ckpt["metrics"]["n_windows"] == reference["metrics"]["n_windows"]
    # prediction: no column for the dropped TFs, and its log and output name them
    result = tmp_path / "S.tfbind.h5ad"
    assert _predict(synth, out, result, "--quiet") == 0
    said = [ln for ln in capfd.readouterr().err.splitlines() if "NRF1" in ln]
    assert len(said) == 1 and "WARNING" in said[0] and "has no TF(s) NRF1, YY1" in said[0], said
    adata = ad.read_h5ad(result)
    assert list(adata.var_names) == ["CTCF", "GATA1"]
    assert list(adata.uns["tfbind"]["dropped_tfs"]) == ["NRF1", "YY1"]
    assert np.asarray(adata.uns["tfbind"]["binding"]).shape[-1] == 2


def test_a_tf_whose_logits_do_not_rank_held_out_windows_gets_its_base_rate(
    synth: Synth,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capfd: pytest.CaptureFixture[str],
) -> None:
    """GATA1's validation logits reversed before the calibration (a model that ranks its
    held-out windows backwards): Platt's slope is then 0 and GATA1's probability its base rate on
    every peak, named in both logs and in the results (before, it kept its raw, class-weighted
    sigmoid and fed that to the GRN's binding prior)."""
    from scregnet.tfbind import api

    fit = api.fit_calibration

    def reversed_gata1(logits: np.ndarray, *args: Any, **kwargs: Any) -> Any:
        return fit(logits * np.array([1.0, -1.0]), *args, **kwargs)

    monkeypatch.setattr(api, "fit_calibration", reversed_gata1)
    out = tmp_path / "m.pt"
    ckpt = _train_small(synth, out)
    warned = [ln for ln in capfd.readouterr().err.splitlines() if "GATA1" in ln]
    assert len(warned) == 1 and "WARNING" in warned[0], warned
    assert "GATA1's logits do not rank its held-out windows" in warned[0]
    scale = ckpt["state_dict"]["calib_scale"].numpy()
    bias = ckpt["state_dict"]["calib_bias"].numpy()
    assert scale[0] > 0 and scale[1] == 0
    rate = 1 / (1 + np.exp(-float(bias[1])))
    assert f"base rate on the validation chromosomes, {rate:.3g}," in warned[0]
    assert 0.01 < rate < 0.5
    result = tmp_path / "S.tfbind.h5ad"
    assert _predict(synth, out, result, "--quiet") == 0
    said = [ln for ln in capfd.readouterr().err.splitlines() if "GATA1" in ln]
    assert len(said) == 1 and "binding probability of TF(s) GATA1 is a constant" in said[0], said
    u = ad.read_h5ad(result).uns["tfbind"]
    assert list(u["base_rate_tfs"]) == ["GATA1"]
    binding = np.asarray(u["binding"])
    np.testing.assert_allclose(binding[..., 1], rate, rtol=1e-5)
    assert binding[..., 0].std() > 0.01
    # scFAN's top-2 ranking leaves GATA1 out: CTCF is the top TF of every accessible peak
    activity = ad.read_h5ad(result).layers["scfan_activity"]
    has_read = np.asarray(ad.read_h5ad(synth.atac).X.sum(axis=1)).ravel() > 0
    np.testing.assert_allclose(activity[has_read, 0], 1.0)
    assert (activity[:, 1] == 0).all()


def test_no_tf_with_enough_positives(
    synth: Synth, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    sheet = _sheet_with_untrainable_tfs(synth, tmp_path, keep=False)
    line = _train_fails(synth, tmp_path, capsys, sheet=sheet)
    assert "bulk_sheet.csv" in line and "no TF has 5 positive bins" in line
    assert "NRF1 (train 0, validation 0), YY1 (train 0, validation " in line


def _predict_fails(
    synth: Synth,
    model: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    *extra: str,
    fasta: Path | None = None,
    atac: Path | None = None,
) -> str:
    out = tmp_path / "bad.tfbind.h5ad"
    argv = ["tfbind", "predict", "--model", str(model), "--fasta", str(fasta or synth.fasta)]
    argv += ["--atac", str(atac or synth.atac), "--fragments", str(synth.fragments)]
    code = cli.main(
        [
            *argv,
            "--motifs",
            str(synth.motifs),
            "--out",
            str(out),
            "--device",
            "cpu",
            "--quiet",
            *extra,
        ]
    )
    assert code == 1
    assert not out.exists() and not (tmp_path / "bad").exists()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".bad")]
    return _one_error_line(capsys)


def test_model_on_another_genome(
    synth: Synth, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    fasta = tmp_path / "other.fa"
    fasta.write_text("".join(f">{c}\n{'ACGT' * 1000}\n" for c in CHROMS))
    import pysam

    pysam.faidx(str(fasta))
    line = _predict_fails(synth, model, tmp_path, capsys, fasta=fasta)
    assert "model.pt" in line and "another genome" in line and "chr1" in line and "other.fa" in line


def test_model_with_another_window(
    synth: Synth, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _predict_fails(synth, model, tmp_path, capsys, "--window", "500")
    assert "model.pt" in line and "1000 bp windows, not 500" in line


def test_peaks_outside_chromosome(
    synth: Synth, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    atac = ad.read_h5ad(synth.atac)
    atac.var.loc[atac.var_names[-1], "end"] = CHROM_LEN + 50
    path = tmp_path / "outside.clustered.h5ad"
    atac.write_h5ad(path)
    line = _predict_fails(synth, model, tmp_path, capsys, atac=path)
    assert "outside.clustered.h5ad" in line and "outside the chromosome bounds" in line


def test_finalize_options_refused_with_chrom(
    synth: Synth, model: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    line = _predict_fails(synth, model, tmp_path, capsys, "--chrom", "chr1", "--neighbors", "5")
    assert "--neighbors" in line and "not with --chrom" in line


@pytest.mark.parametrize(
    ("sub", "flag", "value", "says"),
    [
        ("train", "--lr", "0", "must be a positive number"),
        ("train", "--negative-ratio", "-1", "must be a positive number"),
        ("train", "--max-pos-weight", "inf", "must be a positive number"),
        ("predict", "--motif-p-value", "2", "must be between 0 and 1 (exclusive)"),
        ("predict", "--threshold", "1", "must be between 0 and 1 (exclusive)"),
    ],
)
def test_numeric_options_out_of_range(
    sub: str, flag: str, value: str, says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    required = {
        "train": ["--fasta", "g", "--bulk", "b", "--out", "o"],
        "predict": [
            "--model",
            "m",
            "--fasta",
            "g",
            "--atac",
            "a",
            "--fragments",
            "f",
            "--out",
            "o",
        ],
    }[sub]
    with pytest.raises(SystemExit) as exc:
        cli.build_parser().parse_args(["tfbind", sub, *required, flag, value])
    assert exc.value.code == 2
    assert f"argument {flag}: {says}, got {value}" in capsys.readouterr().err


def test_nested_help_and_common_options(capsys: pytest.CaptureFixture[str]) -> None:
    for sub in ("train", "predict", "merge"):
        with pytest.raises(SystemExit) as exc:
            cli.main(["tfbind", sub, "--help"])
        assert exc.value.code == 0
        out = capsys.readouterr().out
        assert "--seed" in out and "--threads" in out
    parser = cli.build_parser()
    args = parser.parse_args(
        ["tfbind", "--seed", "5", "train", "--fasta", "g", "--bulk", "b", "--out", "o"]
    )
    assert args.seed == 5 and args.threads == 1
    args = parser.parse_args(
        [
            "tfbind",
            "train",
            "--fasta",
            "g",
            "--bulk",
            "b",
            "--out",
            "o",
            "--seed",
            "7",
            "--threads",
            "2",
        ]
    )
    assert (args.seed, args.threads) == (7, 2)
