/*
 * The scregnet DAG: ATAC counts -> (imputation) -> TF binding -> GRN -> report.
 *
 * Every process is called here directly, so this workflow's DAG is the process graph that
 * `scregnet run` follows (scregnet.pipeline.STAGE_GRAPH; tests/python/test_nextflow_lsp.py compares them).
 * Optional inputs are values that are [] when absent; they steer the branches below.
 */

include { FRAGMENTS      } from '../modules/local/fragments'
include { PEAKS          } from '../modules/local/peaks'
include { COUNT          } from '../modules/local/count'
include { CLUSTER        } from '../modules/local/cluster'
include { TRACKS         } from '../modules/local/tracks'
include { IMPUTE         } from '../modules/local/impute'
include { TFBIND_TRAIN   } from '../modules/local/tfbind_train'
include { TFBIND_PREDICT } from '../modules/local/tfbind_predict'
include { TFBIND_MERGE   } from '../modules/local/tfbind_merge'
include { GRN            } from '../modules/local/grn'
include { REPORT         } from '../modules/local/report'
include { MULTIQC        } from '../modules/local/multiqc'

workflow SCREGNET {

    take:
    ch_bam          // channel: [ meta, path(bam), path(bai) ]
    ch_fragments_in // channel: [ meta, path(fragments), path(tbi) ]  (samples given as fragments)
    ch_rna          // channel: [ meta, path(rna.h5ad) ]
    references      // value channel: [ fasta:, fai:, gtf:, peaks:, bulk_sheet:, bulk_files:, bulk_rna:, motifs:, tfs:, grn_labels:, tfbind_model: ] (path or [])
    skip_chroms     // list: chromosomes left out of TF-binding prediction (e.g. chrM)
    multiqc_config  // value channel: path(multiqc_config.yml)

    main:
    ch_fasta = references.map { refs -> refs.fasta }  // value channel: path(genome.fa)
    ch_fai   = references.map { refs -> refs.fai }    // value channel: path(genome.fa.fai)
    ch_gtf   = references.map { refs -> refs.gtf }    // value channel: path(genes.gtf)

    //
    // Stage 1: ATAC counts, per sample in parallel
    //
    FRAGMENTS(ch_bam)
    ch_fragments = FRAGMENTS.out.fragments.mix(ch_fragments_in)  // channel: [ meta, path(fragments), path(tbi) ]

    ch_peaks_source = ch_fragments
        .combine(references)
        .branch { meta, fragments, tbi, refs ->
            given: refs.peaks
                return [ meta, refs.peaks ]
            call: true
                return [ meta, fragments, tbi ]
        }
    PEAKS(ch_peaks_source.call, ch_fai)
    ch_peaks = PEAKS.out.peaks.mix(ch_peaks_source.given)  // channel: [ meta, path(peaks) ]

    COUNT(ch_fragments.join(ch_peaks), ch_fai, ch_gtf)
    CLUSTER(COUNT.out.h5ad)
    TRACKS(ch_fragments.join(CLUSTER.out.h5ad), ch_fai)

    //
    // Stage 2: imputation of the samples that have scRNA
    //
    IMPUTE(ch_rna, references.map { refs -> refs.bulk_rna })

    //
    // Stage 3: TF binding; train on bulk unless a model is given, predict per sample x chromosome
    //
    ch_train = references
        .filter { refs -> !refs.tfbind_model && refs.bulk_sheet }
        .map { refs -> [ [ id: 'tfbind' ], refs.bulk_sheet, refs.bulk_files ] }
    TFBIND_TRAIN(ch_train, ch_fasta, ch_fai, references.map { refs -> refs.motifs })
    ch_model = TFBIND_TRAIN.out.model
        .map { _meta, model -> model }
        .mix(references.filter { refs -> refs.tfbind_model }.map { refs -> refs.tfbind_model })  // channel: path(model.pt)

    ch_chroms = ch_fai
        .splitCsv(sep: '\t')
        .map { row -> row[0] }
        .filter { chrom -> !(chrom in skip_chroms) }  // channel: chromosome name
    ch_shards = CLUSTER.out.h5ad
        .join(ch_fragments)
        .combine(ch_chroms)
        .combine(ch_model)  // channel: [ meta, path(clustered), path(fragments), path(tbi), chrom, path(model) ]
    TFBIND_PREDICT(ch_shards, ch_fasta, ch_fai, references.map { refs -> refs.motifs })
    TFBIND_MERGE(TFBIND_PREDICT.out.shard.groupTuple().join(CLUSTER.out.h5ad))  // [ meta, [ shards ], path(clustered) ]

    //
    // Stage 4: one GRN over all views, supervised by known edges or by the TF-binding priors
    //
    ch_imputed = IMPUTE.out.h5ad.map { _meta, h5ad -> h5ad }.collect()  // value channel: [ path(imputed.h5ad), ... ]
    ch_priors = TFBIND_MERGE.out.h5ad.map { _meta, h5ad -> h5ad }.collect().ifEmpty([])
    ch_grn = ch_imputed
        .map { views -> [ [ id: 'grn' ], views ] }
        .combine(ch_priors.map { priors -> [ priors ] })
        .combine(references)
        .filter { _meta, _views, priors, refs -> refs.grn_labels || priors }
        .map { meta, views, priors, refs -> [ meta, views, refs.grn_labels, refs.grn_labels ? [] : priors ] }
    GRN(ch_grn, ch_gtf, references.map { refs -> refs.tfs })

    //
    // Report and MultiQC over everything the run produced
    //
    ch_atac_results = ch_fragments
        .map { _meta, fragments, tbi -> [ fragments, tbi ] }
        .mix(COUNT.out.h5ad.map { _meta, h5ad -> h5ad })
        .mix(COUNT.out.qc.map { _meta, qc -> qc })
        .mix(CLUSTER.out.h5ad.map { _meta, h5ad -> h5ad })
        .flatten()
        .collect()
    REPORT(
        ch_atac_results
            .map { atac -> [ [ id: 'report' ], atac ] }
            .combine(TRACKS.out.tracks.map { _meta, dir -> dir }.collect().ifEmpty([]).map { dirs -> [ dirs ] })
            .combine(IMPUTE.out.h5ad.map { _meta, h5ad -> h5ad }.collect().ifEmpty([]).map { files -> [ files ] })
            .combine(TFBIND_MERGE.out.h5ad.map { _meta, h5ad -> h5ad }.collect().ifEmpty([]).map { files -> [ files ] })
            .combine(GRN.out.edges.mix(GRN.out.attention).map { _meta, tsv -> tsv }.collect().ifEmpty([]).map { files -> [ files ] })
    )

    ch_versions = channel.topic('versions')
        .unique()
        .map { process, tool, version -> "${process.tokenize(':').last()}:\n  ${tool}: ${version}" }
        .collectFile(name: 'software_versions_mqc.yml', sort: true, newLine: true)
    ch_multiqc_files = COUNT.out.qc
        .map { _meta, qc -> qc }
        .mix(REPORT.out.mqc.map { _meta, mqc -> mqc })
        .mix(ch_versions)
        .collect()
        .map { files -> [ [ id: 'multiqc' ], files ] }
    MULTIQC(ch_multiqc_files, multiqc_config)

    emit:
    report         = REPORT.out.html        // channel: [ meta, path(report.html) ]
    multiqc_report = MULTIQC.out.report     // channel: [ meta, path(multiqc_report.html) ]
    grn            = GRN.out.edges          // channel: [ meta, path(grn_edges.tsv) ]
}
