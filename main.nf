#!/usr/bin/env nextflow
/*
 * scregnet: single-cell ATAC (+ scRNA) to counts, imputed expression, TF binding and a GRN.
 *
 * The only file that reads params: it validates them against nextflow_schema.json (nf-schema),
 * hands them to PIPELINE_INITIALISATION as one map, and runs the SCREGNET workflow.
 */

include { validateParameters; paramsSummaryLog } from 'plugin/nf-schema'
include { PIPELINE_INITIALISATION              } from './subworkflows/local/utils_scregnet_pipeline'
include { PIPELINE_COMPLETION                  } from './subworkflows/local/utils_scregnet_pipeline'
include { SCREGNET                             } from './workflows/scregnet'

workflow {

    main:
    if (params.validate_params) {
        validateParameters()
    }
    log.info(paramsSummaryLog(workflow))

    if (!params.simulate_preset && !(params.input && params.fasta && params.gtf)) {
        error("Give --input samplesheet.csv, --fasta genome.fa and --gtf genes.gtf (or -profile test, which simulates them)")
    }
    def profile_problem = missingProfileParams(workflow.profile, params)
    if (profile_problem) {
        error(profile_problem)
    }

    PIPELINE_INITIALISATION(
        [
            input           : params.input,
            fasta           : params.fasta,
            gtf             : params.gtf,
            peaks           : params.peaks,
            bulk_sheet      : params.bulk_sheet,
            bulk_rna        : params.bulk_rna,
            motifs          : params.motifs,
            tfs             : params.tfs,
            grn_labels      : params.grn_labels,
            tfbind_model    : params.tfbind_model,
            simulate_preset : params.simulate_preset,
            simulate_drop   : params.simulate_drop ? params.simulate_drop.tokenize(',') : [],
            outdir          : params.outdir,
            params          : params,
            run_name        : params.trace_report_suffix,
        ]
    )

    SCREGNET(
        PIPELINE_INITIALISATION.out.bam,
        PIPELINE_INITIALISATION.out.fragments,
        PIPELINE_INITIALISATION.out.rna,
        PIPELINE_INITIALISATION.out.references,
        [
            skip_chroms   : params.tfbind_skip_chroms ? params.tfbind_skip_chroms.tokenize(',') : [],
            tfbind_shards : params.tfbind_shards,
            grn_shards    : params.grn_shards,
            outdir        : params.outdir,
        ],
        channel.value(file(params.multiqc_config ?: "${projectDir}/assets/multiqc_config.yml", checkIfExists: true)),
    )

    PIPELINE_COMPLETION(params.outdir)
}

// A profile's parameters that Nextflow itself would find missing only when it submits the first
// task, after the samplesheet and references have been read: the message, or null
def missingProfileParams(String profile, Map run_params) {
    def names = (profile ?: '').tokenize(',')*.trim()
    if ('awsbatch' in names && !run_params.aws_queue) {
        return "-profile awsbatch needs --aws_queue (the AWS Batch job queue for CPU tasks; GPU tasks go to --gpu_queue when given)"
    }
    return null
}
