"""Real-data sanity check: CTCF GM12878 top-500 ChIP summits vs dinucleotide-shuffled backgrounds.

The sequence-only model must reach AUROC >= 0.90 on a held-out fifth. The backgrounds keep each
summit's exact dinucleotide (hence GC) composition, which the GC-content baseline measured in the
same test confirms (AUROC about 0.5); the JASPAR CTCF PWM is reported beside it.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pysam
import torch
from torch.utils.data import TensorDataset

from scregnet.stats import auroc
from scregnet.tfbind.data import one_hot
from scregnet.tfbind.motifs import MotifScanner, read_motifs
from scregnet.tfbind.train import TrainConfig, predict_dataset
from tfbind_sequences import dinucleotide_shuffle, fit_sequences


def test_ctcf_summits_against_shuffled_background(testdata: Path) -> None:
    torch.set_num_threads(1)
    fasta = pysam.FastaFile(str(testdata / "tf_peaks" / "Gm12878.CTCF.top500.w200.fa"))
    positives = [fasta.fetch(name).upper() for name in fasta.references]
    assert len(positives) == 500 and {len(s) for s in positives} == {200}
    rng = np.random.default_rng(0)
    negatives = [dinucleotide_shuffle(s, rng) for s in positives]
    seqs = positives + negatives
    y = np.r_[np.ones(500), np.zeros(500)].astype(np.float32)
    fold = rng.permutation(500) % 5
    test = np.r_[fold == 0, fold == 0]  # a summit and its own shuffle stay in the same fold

    config = TrainConfig(
        filters=(32, 32, 32), hidden=32, epochs=12, patience=3, batch_size=32, lr=4e-3, seed=0
    )
    train_seqs = [s for s, t in zip(seqs, test, strict=True) if not t]
    model, _ = fit_sequences(train_seqs, y[~test], config=config, device=torch.device("cpu"))
    x_test = torch.from_numpy(np.stack([one_hot(s) for s, t in zip(seqs, test, strict=True) if t]))
    probs, _ = predict_dataset(
        model, TensorDataset(x_test, torch.from_numpy(y[test][:, None])), device=torch.device("cpu")
    )
    model_auroc = auroc(y[test], probs[:, 0])

    gc = np.array([(s.count("G") + s.count("C")) / len(s) for s in seqs])
    gc_auroc = auroc(y[test], gc[test])
    ctcf = next(
        m
        for m in read_motifs(testdata / "motifs" / "JASPAR2022_vertebrates.pfm")
        if m.name.upper() == "CTCF"
    )
    scanner = MotifScanner([ctcf])
    pwm = scanner.max_scores(x_test.numpy(), np.full(int(test.sum()), 200))[:, 0]
    pwm_auroc = auroc(y[test], pwm)
    print(f"CTCF held-out AUROC: model {model_auroc:.3f}, PWM {pwm_auroc:.3f}, GC {gc_auroc:.3f}")
    assert abs(gc_auroc - 0.5) < 0.05  # the background is GC-matched
    assert model_auroc >= 0.90
