/*
 * The scregnet DAG: ATAC counts -> (imputation) -> TF binding -> GRN -> report.
 *
 * Every process is called here directly, so this workflow's DAG is the process graph that
 * `scregnet run` follows (the step table, scregnet.pipeline.steps; tests/python/test_nextflow_lsp.py
 * compares the graphs and tests/python/test_nextflow_argv.py each module's command line).
 * Optional inputs are values that are [] when absent; they steer the branches below.
 *
 * -resume: every list of files handed to one task is sorted (by sample id or file name), so that a
 * task's inputs, and therefore its cache key, do not depend on the order in which upstream tasks
 * finished.
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
include { GRN_TRAIN      } from '../modules/local/grn_train'
include { GRN_SCORE      } from '../modules/local/grn_score'
include { GRN_MERGE      } from '../modules/local/grn_merge'
include { REPORT         } from '../modules/local/report'
include { MULTIQC        } from '../modules/local/multiqc'

workflow SCREGNET {

    take:
    ch_bam          // channel: [ meta, path(bam), path(bai) ]
    ch_fragments_in // channel: [ meta, path(fragments), path(tbi) ]  (samples given as fragments)
    ch_rna          // channel: [ meta, path(rna.h5ad) ]
    references      // value channel: [ fasta:, fai:, gtf:, peaks:, bulk_sheet: (text), bulk_files:, bulk_rna:, motifs:, tfs:, grn_labels:, tfbind_model: ] (path or [])
    options         // map: skip_chroms (list: chromosomes left out of TF-binding prediction), tfbind_shards (int: prediction tasks per sample), grn_shards (int: GRN scoring tasks), outdir (string: results directory)
    multiqc_config  // value channel: path(multiqc_config.yml)

    main:
    ch_fasta = references.map { refs -> refs.fasta }  // value channel: path(genome.fa)
    ch_fai   = references.map { refs -> refs.fai }    // value channel: path(genome.fa.fai)
    ch_gtf   = references.map { refs -> refs.gtf }    // value channel: path(genes.gtf)

    //
    // Stage 1: ATAC counts, per sample in parallel
    //
    FRAGMENTS(ch_bam, ch_fai)
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
    // Stage 3: TF binding; train on bulk unless a model is given, predict per sample x shard
    // (a shard is a balanced group of chromosomes; see predictionShards)
    //
    ch_train = references
        .filter { refs -> !refs.tfbind_model && refs.bulk_sheet }
        .map { refs -> [ [ id: 'tfbind' ], refs.bulk_sheet, refs.bulk_files ] }
    TFBIND_TRAIN(ch_train, ch_fasta, ch_fai, references.map { refs -> refs.motifs })
    ch_model = TFBIND_TRAIN.out.model
        .map { _meta, model -> model }
        .mix(references.filter { refs -> refs.tfbind_model }.map { refs -> refs.tfbind_model })  // channel: path(model.pt)

    ch_chrom_shards = ch_fai
        .flatMap { fai -> predictionShards(fai.splitCsv(sep: '\t').collect { row -> [ row[0], row[1] as long ] }, options.skip_chroms, options.tfbind_shards) }  // channel: [ id: 'shard1', chroms: [ name, ... ] ]
    ch_shards = CLUSTER.out.h5ad
        .join(ch_fragments)
        .combine(ch_chrom_shards)
        .combine(ch_model)  // channel: [ meta, path(clustered), path(fragments), path(tbi), shard, path(model) ]
    TFBIND_PREDICT(ch_shards, ch_fasta, ch_fai, references.map { refs -> refs.motifs })
    // a key that knows the number of shards: each sample's merge starts once its own shards are
    // done, not after every sample's (a sample missing a shard, under errorStrategy 'ignore', gets
    // no merge, and the report lists its TF binding as missing)
    ch_shard_files = TFBIND_PREDICT.out.shard
        .combine(ch_chrom_shards.count())
        .map { meta, shard, n_shards -> [ groupKey(meta, n_shards), shard ] }
        .groupTuple(sort: { a, b -> a.name <=> b.name })
        .map { key, shards -> [ key.getGroupTarget(), shards ] }  // channel: [ meta, [ shard files, by name ] ]
    ch_skipped = ch_fai.map { fai -> skippedContigs(fai.splitCsv(sep: '\t').collect { row -> [ row[0], row[1] as long ] }, options.skip_chroms) }  // value channel: [ contig names left out ]
    TFBIND_MERGE(ch_shard_files.join(CLUSTER.out.h5ad), ch_skipped)  // [ meta, [ shards ], path(clustered) ]

    //
    // Stage 4: one GRN over all views, supervised by known edges or by the TF-binding priors:
    // train once, score the TFs in shards (grnShards), merge the shards into the ranked edges
    //
    // the GRN reads genes in the first view's order: views and priors go in sample-id order
    ch_imputed = sortedBySample(IMPUTE.out.h5ad).filter { views -> views }  // value channel: [ path(imputed.h5ad), ... ], none without scRNA
    ch_priors = sortedBySample(TFBIND_MERGE.out.h5ad).ifEmpty([])
    ch_grn = ch_imputed
        .map { views -> [ [ id: 'grn' ], views ] }
        .combine(ch_priors.map { priors -> [ priors ] })
        .combine(references)
        .filter { _meta, _views, priors, refs -> refs.grn_labels || priors }
        .map { meta, views, priors, refs -> [ meta, views, refs.grn_labels, refs.grn_labels ? [] : priors ] }  // channel: [ meta, [ views ], path(labels) or [], [ priors ] or [] ]
    GRN_TRAIN(ch_grn, ch_gtf)

    // scoring reads the views and priors the model was trained on (no priors with known edges)
    ch_grn_score = ch_grn
        .map { meta, views, _labels, priors -> [ meta, views, priors ] }
        .combine(channel.fromList(grnShards(options.grn_shards)))
        .combine(GRN_TRAIN.out.model, by: 0)  // channel: [ meta, [ views ], [ priors ] or [], shard, path(grn_model.pt) ]
    GRN_SCORE(ch_grn_score, ch_gtf, references.map { refs -> refs.tfs })
    ch_grn_shards = GRN_SCORE.out.shard
        .groupTuple(sort: { a, b -> a.name <=> b.name })  // channel: [ meta, [ shard files, by name ] ]
    GRN_MERGE(ch_grn_shards)

    //
    // Report and MultiQC over everything the run produced
    //
    // REPORT reads the counts, not the fragments files (their lengths are counted by COUNT):
    // nothing the size of the sequencing data is copied into it
    // the results the samplesheet asks for: the report names any that a failed task left out
    // (under a site's errorStrategy 'ignore' the run goes on without them)
    ch_expected = ch_bam
        .map { meta, _bam, _bai -> meta.id }
        .mix(ch_fragments_in.map { meta, _fragments, _tbi -> meta.id })
        .toSortedList()
        .map { ids -> [ ids ] }
        .combine(ch_rna.map { meta, _rna -> meta.id }.toSortedList().map { ids -> [ ids ] })
        .combine(references)
        .combine(ch_chrom_shards.count())
        .map { atac, rna, refs, n_shards -> expectedResults(atac, rna, (refs.tfbind_model || refs.bulk_sheet) && n_shards > 0, refs.grn_labels) }  // value channel: [ 'atac=s1,s2', 'impute=s1', ... ]
    ch_atac_results = COUNT.out.h5ad
        .mix(COUNT.out.qc)
        .mix(CLUSTER.out.h5ad)
        .map { _meta, file -> file }
        .collect(sort: { a, b -> a.name <=> b.name })
        .ifEmpty([])  // every sample failed (errorStrategy 'ignore'): the report still lists what is missing
    REPORT(
        ch_atac_results
            .map { atac -> [ [ id: 'report' ], atac ] }
            .combine(sortedBySample(TRACKS.out.tracks).ifEmpty([]).map { dirs -> [ dirs ] })
            .combine(sortedBySample(IMPUTE.out.h5ad).ifEmpty([]).map { files -> [ files ] })
            .combine(sortedBySample(TFBIND_MERGE.out.h5ad).ifEmpty([]).map { files -> [ files ] })
            .combine(GRN_MERGE.out.edges.mix(GRN_MERGE.out.attention).map { _meta, tsv -> tsv }.collect(sort: { a, b -> a.name <=> b.name }).ifEmpty([]).map { files -> [ files ] })
            .combine(ch_expected.map { expected -> [ expected ] })
    )

    // software versions from the 'versions' topic: one YAML for MultiQC and pipeline_info/, one
    // entry per process with its tools (MultiQC reads *_mqc_versions.yml as its versions table)
    ch_versions = channel.topic('versions')
        .unique()
        .map { process, tool, version -> [ process.tokenize(':').last(), "  ${tool}: ${version}" ] }
        .groupTuple(sort: true)
        .map { process, tools -> "${process}:\n${tools.join('\n')}" }
        .collectFile(name: 'software_mqc_versions.yml', storeDir: "${options.outdir}/pipeline_info", sort: true, newLine: true)
    // one row per sample (REPORT's table); per-barcode QC stays in atac/*.qc.tsv
    ch_multiqc_files = REPORT.out.mqc
        .map { _meta, mqc -> mqc }
        .mix(ch_versions)
        .collect(sort: { a, b -> a.name <=> b.name })
        .map { files -> [ [ id: 'multiqc' ], files ] }
    MULTIQC(ch_multiqc_files, multiqc_config)

    emit:
    report         = REPORT.out.html        // channel: [ meta, path(report.html) ]
    multiqc_report = MULTIQC.out.report     // channel: [ meta, path(multiqc_report.html) ]
    grn            = GRN_MERGE.out.edges    // channel: [ meta, path(grn_edges.tsv) ]
}

/*
 * The files of a [ meta, path ] channel as one list in sample-id order (a value channel).
 */
def sortedBySample(ch) {
    return ch
        .toSortedList { a, b -> a[0].id <=> b[0].id }
        .map { items -> items.collect { item -> item[1] } }
}

/*
 * The results a run should write, as `scregnet report --expect` takes them: every ATAC sample's
 * clustered counts (and TF binding when a model is given or trained and a contig is left to
 * predict on), every scRNA sample's imputation, and the GRN when there is scRNA and either known
 * edges or TF binding to learn from.
 */
def expectedResults(atac, rna, tfbind, grnLabels) {
    def expected = []
    if (atac) {
        expected << "atac=${atac.join(',')}".toString()
        if (tfbind) {
            expected << "tfbind=${atac.join(',')}".toString()
        }
    }
    if (rna) {
        expected << "impute=${rna.join(',')}".toString()
        if (grnLabels || (atac && tfbind)) {
            expected << 'grn'
        }
    }
    return expected
}

/*
 * GRN scoring shards: the TFs dealt into `n` equal groups by `scregnet grn score --shard K/N`, one
 * task each ([ id: 'shardK', index: K, count: N ], K = 1..N).
 */
def grnShards(n) {
    def count = Math.max(1, n as int)
    return (1..count).collect { k -> [ id: "shard${k}", index: k, count: count ] }
}

/*
 * Contigs that TF-binding prediction skips by rule: unplaced, unlocalised, alternate, fix-patch,
 * decoy, HLA and EBV sequences (GRCh38/hg38, GRCm39/mm39 and Ensembl naming). Such contigs are
 * short, repeat the primary assembly or carry no gene regulation that a GRN can use. And the
 * mitochondrial genome (the names of scregnet.io.genome.MITOCHONDRIAL): `scregnet fragments`
 * leaves it out, so it has no peaks.
 */
def isMinorContig(name) {
    return name in [ 'chrM', 'MT', 'M', 'chrMT' ] \
        || name ==~ /(?i).*(_alt|_random|_fix|_decoy|_hap\d+)$/ \
        || name ==~ /(?i)^(chr)?Un([_-].*)?$/ \
        || name ==~ /(?i)^(chr)?EBV$/ \
        || name ==~ /^HLA-.*/ \
        || name ==~ /^(GL|KI|JH|KN|KQ|KV|KZ|ML|MU)\d+(\.\d+)?$/ \
        || name ==~ /(?i)^hs3\d+d\d+$|.*decoy.*/
}

/*
 * Stop with a message naming the contigs whose names cannot be passed safely on a command line
 * (a quote, a comma or white space).
 */
def checkContigNames(contigs) {
    def bad = contigs.findAll { contig -> !(contig[0] ==~ /[!-~]+/) || contig[0].contains("'") || contig[0].contains(',') }
    if (bad) {
        error("Genome index: contig name(s) ${bad.collect { contig -> contig[0] }.join(' ')} contain a quote, a comma or white space; rename them in the FASTA")
    }
}

/*
 * The contigs that predictionShards leaves out (`skip` and the minor contigs), in .fai order:
 * TFBIND_MERGE accepts peaks on them without a prediction.
 */
def skippedContigs(contigs, skip) {
    checkContigNames(contigs)
    return contigs.findAll { contig -> contig[0] in skip || isMinorContig(contig[0]) }.collect { contig -> contig[0] }
}

/*
 * TF-binding prediction shards: the contigs of a .fai ([ name, length ] pairs, in file order) less
 * those in `skip` and the minor contigs, dealt into at most `n` groups of balanced total length
 * (longest first, each to the lightest group; ties to the first group). Each shard keeps its
 * contigs in .fai order. A contig name that cannot be passed safely on a command line (it contains
 * a quote, a comma or white space) is an error naming it.
 */
def predictionShards(contigs, skip, n) {
    checkContigNames(contigs)
    def kept = contigs.findAll { contig -> !(contig[0] in skip) && !isMinorContig(contig[0]) }
    def order = kept.withIndex().collect { contig, i -> [ contig[0], contig[1] as long, i ] }
    def groups = (0..<Math.max(1, Math.min(n as int, order.size()))).collect { _i -> [ total: 0L, members: [] ] }
    order.sort(false) { a, b -> b[1] <=> a[1] ?: a[2] <=> b[2] }.each { contig ->
        def lightest = groups.min { g -> g.total }
        lightest.total += contig[1]
        lightest.members << contig
    }
    return groups
        .findAll { g -> g.members }
        .withIndex()
        .collect { g, i -> [ id: "shard${i + 1}", chroms: g.members.sort(false) { c -> c[2] }.collect { c -> c[0] } ] }
}
