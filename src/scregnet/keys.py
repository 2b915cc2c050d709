"""The AnnData keys one stage writes and another stage, the scorer or the report reads, where
each stage's result lies in a results folder, and the runner's trace and step records that the
report reads.

Stages meet only through files; these names are the contract inside those files, defined once.
"""

from __future__ import annotations

# ---- clustering (``scregnet cluster``) -------------------------------------------------------
#: obs column with each cell's cluster label
CLUSTER = "cluster"
#: obsm key of the cells' LSI embedding
LSI = "X_lsi"
#: obsm key of the cells' UMAP coordinates
UMAP = "X_umap"

# ---- counting (``scregnet count``) -----------------------------------------------------------
#: obsm key of the cells x genome tiles counts, and uns key of the tiles' layout: ``size``,
#: ``chroms``, ``n_tiles`` and the genome's ``chrom_sizes`` the data were counted against
TILES = "tiles"
#: ``uns`` of ``scregnet count``'s AnnData: fragments by length (index = length in bp, the last
#: bin all of at least ``MAX_FRAGMENT_LENGTH_BIN``), over every fragment counted
FRAGMENT_LENGTHS = "fragment_lengths"
MAX_FRAGMENT_LENGTH_BIN = 1000

# ---- expression inputs (``scregnet impute --view``, read by ``scregnet grn``) -------------------
#: obs column with each cell's view (condition or time point): cells of one view are pooled, views
#: are the GRN's inputs side by side
VIEW = "view"

# ---- imputation (``scregnet impute``) --------------------------------------------------------
#: the headline layer: log1p of the model's expected expression (counts per 10k); also the
#: bool var column marking the modelled genes
IMPUTED = "imputed"
#: layer: expected log-normalised value of a count at the cell's depth
IMPUTED_EXPECTED = "imputed_expected"
#: layer: the same given detection
IMPUTED_DETECTED = "imputed_detected"
#: layer: the baseline post-hoc fill rule (no network)
FILL_RULE = "baseline_fill_rule"
#: uns key recording what the imputation did
IMPUTE_UNS = "scregnet_impute"
#: its ``bulk_source`` entry: what the bulk stage trained on (value -> words for the report)
BULK_SOURCES = {
    "bulk": "trained on the bulk RNA profiles given (--bulk)",
    "pseudobulk": "trained on the pseudobulk of the cells' own k-means clusters (no bulk RNA given)",
    "shallow_cells": (
        "skipped: no bulk RNA given and the cells are shallow or noisy (smoothing over more "
        "neighbours predicts their held-out molecules about as well as over the fewest, or "
        "better), where pretraining on their own pseudobulk lowered accuracy"
    ),
    "none": "turned off",
}

# ---- TF binding (``scregnet tfbind``) --------------------------------------------------------
#: uns key of a prediction shard (one or more chromosomes' per-peak predictions)
TFBIND_SHARD = "tfbind_shard"
#: uns key of the merged result's metadata
TFBIND_UNS = "tfbind"
#: its entry naming the TFs whose binding probability is a constant, their base rate (the model's
#: logits did not rank their validation windows): they carry no binding evidence
BASE_RATE_TFS = "base_rate_tfs"
#: layer: cells x TFs activity from the model's predicted binding
SCFAN_ACTIVITY = "scfan_activity"
#: obsm key of the chromVAR-style baseline deviations
CHROMVAR = "chromvar"

# ---- the results folder (docs/output.md; both runners write it, the report and scorer read it) ---
#: each per-sample stage's result, ``<folder>/<sample><suffix>``, by stage
SAMPLE_RESULTS = {
    "atac": ("atac", ".clustered.h5ad"),
    "impute": ("impute", ".imputed.h5ad"),
    "tfbind": ("tfbind", ".tfbind.h5ad"),
}
#: an ATAC sample's counts before clustering (``scregnet count``), beside its result
ATAC_COUNTS = ".atac.h5ad"
#: the GRN's ranked edges
GRN_EDGES = "grn/grn_edges.tsv"
#: the stages whose results a run is expected to write (``scregnet report --expect``)
RESULT_STAGES = (*SAMPLE_RESULTS, "grn")

# ---- the runner's bookkeeping in the results folder (``scregnet run``; the report reads it) ----
#: the trace: a row per step with its status (below), times and log
TRACE = "pipeline_info/trace.tsv"
#: a finished step's record: its command, inputs and outputs (``scregnet.pipeline.state``)
STEP_RECORD = "pipeline_info/steps/{stage}.{name}.json"
#: a step's status: it ran and wrote its outputs
STEP_COMPLETED = "COMPLETED"
#: its outputs were up to date, so it did not run (resume)
STEP_CACHED = "CACHED"
#: skipped: the optional tool it runs is not installed
STEP_SKIPPED = "SKIPPED"
#: it exited with an error
STEP_FAILED = "FAILED"
#: not started: it needs the outputs of a failed step (``--keep-going``), or the run stopped first
STEP_NOT_RUN = "NOT_RUN"
#: stopped while running, by a failure beside it or an interrupt
STEP_ABORTED = "ABORTED"

# ---- scoring (``scregnet evaluate``, or ``scregnet report --truth``) ---------------------------
#: the scores against a simulated world's truth, in the results folder (the report shows them)
EVALUATION = "evaluation.json"
