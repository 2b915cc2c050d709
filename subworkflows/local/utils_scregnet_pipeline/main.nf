/*
 * Pipeline initialisation and completion: turn the inputs main.nf read from params into channels.
 *
 * Relative paths inside a samplesheet or a bulk sheet are relative to that sheet's own directory,
 * the same rule as `scregnet run` (src/scregnet/io/samplesheet.py). Before nf-schema validates the
 * samplesheet, a copy with those paths made absolute is written to <outdir>/pipeline_info/, beside
 * a dump of the run's parameters. These two records are written at launch and are never a process
 * input: a task input written anew at each launch would change its cache key and defeat -resume.
 */

include { samplesheetToList } from 'plugin/nf-schema'
include { SIMULATE          } from '../../../modules/local/simulate'

workflow PIPELINE_INITIALISATION {

    take:
    inputs  // map: input, fasta, gtf, peaks, bulk_sheet, bulk_rna, motifs, tfs, grn_labels, tfbind_model (String or null), simulate_preset (String or null), simulate_drop (list: inputs of the simulated world to leave out), outdir (String), params (map: every parameter, dumped to pipeline_info/), run_name (String: suffix of the dump's name)

    main:
    def schema = "${projectDir}/assets/schema_input.json"
    def info_dir = file("${inputs.outdir}/pipeline_info")
    def drop_rna = inputs.simulate_preset && 'rna' in inputs.simulate_drop
    dumpParameters(inputs.params, info_dir, inputs.run_name)

    if (inputs.simulate_preset) {
        // -profile test: simulate a world, then read its samplesheet and references like a user's
        SIMULATE(channel.of([ [ id: "world_${inputs.simulate_preset}" ], inputs.simulate_preset ]))
        ch_world = SIMULATE.out.world.map { _meta, world -> world }
        ch_sheet = ch_world.map { world -> world.resolve('samplesheet.csv') }
        ch_references = ch_world.map { world -> worldReferences(world, inputs) }.first()
    }
    else {
        ch_sheet = channel.value(file(inputs.input, checkIfExists: true))
        ch_references = channel.value(userReferences(inputs))
    }

    // [ meta, bam or [], fragments or [], rna or [] ], meta = [ id, view ]
    ch_samples = ch_sheet
        .flatMap { sheet -> samplesheetToList(resolveSamplesheet(sheet, info_dir), schema) }
        .map { meta, bam, fragments, rna -> [ meta + [ view: meta.view ?: meta.id ], bam, fragments, rna ] }

    ch_atac = ch_samples.branch { meta, bam, fragments, _rna ->
        bam: bam
            return [ meta, bam, indexOf(bam, '.bai') ]
        fragments: true
            return [ meta, fragments, indexOf(fragments, '.tbi') ]
    }
    ch_rna = ch_samples
        .filter { _meta, _bam, _fragments, rna -> rna && !drop_rna }
        .map { meta, _bam, _fragments, rna -> [ meta, rna ] }

    emit:
    bam        = ch_atac.bam        // channel: [ meta, path(bam), path(bai) ]
    fragments  = ch_atac.fragments  // channel: [ meta, path(fragments), path(tbi) ]
    rna        = ch_rna             // channel: [ meta, path(rna.h5ad) ]
    references = ch_references      // value channel: map of path or [] (see userReferences)
}

workflow PIPELINE_COMPLETION {

    take:
    outdir  // string: the results directory

    main:
    workflow.onComplete {
        if (workflow.success && workflow.stats.ignoredCount > 0) {
            log.warn("scregnet finished, but ${workflow.stats.ignoredCount} failed task(s) were ignored (errorStrategy 'ignore'): the results are incomplete; ${outdir}/report/report.html lists what is missing")
        }
        else if (workflow.success) {
            log.info("scregnet finished: results in ${outdir}, report in ${outdir}/report/report.html")
        }
        else {
            log.error("scregnet failed: see ${outdir}/pipeline_info/ and .nextflow.log")
        }
    }
}

/*
 * The index file beside a BAM (.bai) or a fragments file (.tbi); a missing index is a samplesheet error.
 */
def indexOf(data, suffix) {
    def index = data.resolveSibling(data.name + suffix)
    if (!index.exists() && suffix == '.bai') {
        def short_name = data.resolveSibling(data.baseName + suffix)  // samtools index -o x.bai
        if (short_name.exists()) {
            return short_name
        }
    }
    if (!index.exists()) {
        error("Samplesheet: ${data} has no index ${data.name}${suffix} beside it (BAM: samtools index; fragments: tabix -p bed)")
    }
    return index
}

/*
 * The sheet's sample ids checked as `scregnet run` checks them (src/scregnet/io/samplesheet.py): unique
 * ignoring case, none a name the pipeline gives its own files, and none another id followed by '.'
 * (every per-sample output is named <id>.<suffix> or <id>/, so their files could share a path).
 * `error` names the first problem; returns the ids.
 */
def checkSampleIds(ids, sheet) {
    def reserved = [ 'all', 'model.pt', 'shards' ]
    def seen = [:]
    ids.each { id ->
        def key = id.toLowerCase()
        if (key in reserved) {
            error("Samplesheet ${sheet}: sample id '${id}' is a name the pipeline gives its own files (reserved: ${reserved.join(', ')})")
        }
        if (seen.containsKey(key)) {
            def same = seen[key] == id ? '' : " (same as '${seen[key]}' ignoring case: their files would collide)"
            error("Samplesheet ${sheet}: duplicate sample id '${id}'${same}")
        }
        seen[key] = id
    }
    def keys = seen.keySet().sort()
    keys.each { key ->
        def longer = keys.find { other -> other.startsWith(key + '.') }
        if (longer) {
            error("Samplesheet ${sheet}: sample id '${seen[longer]}' is sample id '${seen[key]}' followed by '.': their files could share a path; rename one")
        }
    }
    return ids
}

/*
 * Refuse a samplesheet column that misspells a column the pipeline reads and the header lacks,
 * as `scregnet run` does (scregnet.io.samplesheet.misspelt_column): reduced to lower-case letters
 * and digits, it is that column, with or without a final 's', or starts or ends with it ('RNA',
 * 'scrna', 'fragment', 'views'). nf-schema would only warn of an unidentified header, and the
 * samples' scRNA (imputation, GRN) would be dropped without an error.
 */
def checkColumns(header, sheet) {
    def known = [ 'sample', 'bam', 'fragments', 'rna', 'view' ]
    def absent = known.findAll { name -> !(name in header) }
    header.findAll { column -> !(column in known) }.each { column ->
        def norm = column.toLowerCase().replaceAll('[^a-z0-9]', '')
        def meant = absent.find { name ->
            norm && (norm in [ name, name + 's', name.endsWith('s') ? name[0..-2] : name ]
                || norm.startsWith(name) || norm.endsWith(name))
        }
        if (meant) {
            error("Samplesheet ${sheet}: unknown column '${column}' (did you mean '${meant}'? columns: ${known.join(', ')})")
        }
    }
    return header
}

/*
 * A path string relative to `base` unless it is absolute or a URL.
 */
def resolveRelative(value, base) {
    if (!value || value.contains('://') || value.startsWith('/')) {
        return value
    }
    return base.resolve(value).toUriString()
}

/*
 * Two samples reading one BAM or fragments file would be the same cells under two names (a row copied and not
 * edited): refused as `scregnet run` refuses them (scregnet.io.samplesheet); one scRNA file may serve several
 * samples. `data` lists [ sample, column, resolved path ]; local paths are compared normalised.
 */
def checkDistinctData(data, sheet) {
    def owner = [:]
    data.findAll { _sample, column, _value -> column in [ 'bam', 'fragments' ] }.each { sample, column, value ->
        def key = value.contains('://') ? value : new File(value).toPath().normalize().toString()
        if (owner.containsKey(key)) {
            error("Samplesheet ${sheet}: samples '${owner[key]}' and '${sample}' read the same ${column} file ${key}: each sample needs its own")
        }
        owner[key] = sample
    }
}

/*
 * Copy `sheet` to `info_dir` with the bam, fragments and rna columns resolved against the sheet's directory
 * (its sample ids checked first: checkSampleIds).
 */
def resolveSamplesheet(sheet, info_dir) {
    def rows = sheet.splitCsv()
    if (!rows) {
        error("Samplesheet ${sheet} is empty")
    }
    // a byte-order mark (Excel's "CSV UTF-8") is not part of the first column's name
    def header = rows[0].collect { name -> name.trim() }.withIndex().collect { name, i -> i == 0 ? name.replaceFirst('^\uFEFF', '') : name }
    checkColumns(header, sheet)
    if ('sample' in header) {
        checkSampleIds(rows.drop(1).collect { row -> row[header.indexOf('sample')]?.trim() ?: '' }.findAll { id -> id }, sheet)
    }
    def lines = [ header.join(',') ]
    def data = []
    rows.drop(1).each { row ->
        def cells = []
        row.eachWithIndex { cell, i ->
            def value = cell.trim()
            cells << (header[i] in [ 'bam', 'fragments', 'rna' ] ? resolveRelative(value, sheet.parent) : value)
            if (header[i] in [ 'bam', 'fragments', 'rna' ] && value && 'sample' in header) {
                data << [ row[header.indexOf('sample')]?.trim() ?: '', header[i], cells[-1] ]
            }
        }
        lines << cells.join(',')
    }
    checkDistinctData(data, sheet)
    info_dir.mkdirs()
    def resolved = info_dir.resolve("samplesheet.resolved.csv")
    resolved.text = lines.join('\n') + '\n'
    return resolved
}

/*
 * Write every parameter to `info_dir`/params_<run_name>.json (a record of the run).
 */
def dumpParameters(all_params, info_dir, run_name) {
    info_dir.mkdirs()
    def dump = info_dir.resolve("params_${run_name}.json")
    dump.text = groovy.json.JsonOutput.prettyPrint(groovy.json.JsonOutput.toJson(all_params)) + '\n'
}

/*
 * A TF-binding bulk sheet (tf,chip_bed,accessibility_bw,cell_type) with its file columns reduced
 * to base names, as text, and the files it references: [ sheet text, [ files ] ]. TFBIND_TRAIN
 * writes the text next to the staged files, so the task's cache key is the sheet's content and the
 * files, whatever the launch (nothing is written here).
 */
def stageBulkSheet(sheet) {
    def rows = sheet.splitCsv()
    if (rows.size() < 2) {
        error("Bulk sheet ${sheet} has no rows (columns: tf,chip_bed,accessibility_bw,cell_type)")
    }
    def header = rows[0].collect { name -> name.trim() }
    def missing = [ 'tf', 'chip_bed', 'accessibility_bw', 'cell_type' ].findAll { name -> !(name in header) }
    if (missing) {
        error("Bulk sheet ${sheet} lacks column(s) ${missing.join(', ')}")
    }
    def files = [:]
    def lines = [ header.join(',') ]
    rows.drop(1).each { row ->
        def cells = []
        row.eachWithIndex { cell, i ->
            def value = cell.trim()
            if (header[i] in [ 'chip_bed', 'accessibility_bw' ] && value) {
                def path = file(resolveRelative(value, sheet.parent), checkIfExists: true)
                if (files.containsKey(path.name) && files[path.name] != path) {
                    error("Bulk sheet ${sheet}: two different files are named ${path.name}; rename one")
                }
                files[path.name] = path
                value = path.name
            }
            cells << value
        }
        lines << cells.join(',')
    }
    return [ lines.join("\n") + "\n", (files.values() as List).sort(false) { path -> path.name } ]
}

/*
 * The file a param names, or [] when the param is not set.
 */
def optionalFile(value) {
    return value ? file(value, checkIfExists: true) : []
}

/*
 * References from params: each key maps to a file, or to [] when the input was not given.
 */
def userReferences(inputs) {
    def fasta = file(inputs.fasta, checkIfExists: true)
    def bulk = inputs.bulk_sheet ? stageBulkSheet(file(inputs.bulk_sheet, checkIfExists: true)) : [ [], [] ]
    return [
        fasta        : fasta,
        fai          : file("${inputs.fasta}.fai", checkIfExists: true),
        gtf          : file(inputs.gtf, checkIfExists: true),
        peaks        : optionalFile(inputs.peaks),
        bulk_sheet   : bulk[0],
        bulk_files   : bulk[1],
        bulk_rna     : optionalFile(inputs.bulk_rna),
        motifs       : optionalFile(inputs.motifs),
        tfs          : optionalFile(inputs.tfs),
        grn_labels   : optionalFile(inputs.grn_labels),
        tfbind_model : optionalFile(inputs.tfbind_model),
    ]
}

/*
 * References of a simulated world (the files its params.yaml names), less those named in
 * inputs.simulate_drop (to exercise the optional branches); params given explicitly (grn_labels,
 * tfbind_model) still apply.
 */
def worldReferences(world, inputs) {
    def drop = inputs.simulate_drop
    def bulk = 'bulk_sheet' in drop ? [ [], [] ] : stageBulkSheet(world.resolve('bulk/bulk_sheet.csv'))
    return [
        fasta        : world.resolve('genome.fa'),
        fai          : world.resolve('genome.fa.fai'),
        gtf          : world.resolve('genes.gtf'),
        peaks        : 'peaks' in drop ? [] : world.resolve('peaks.bed'),
        bulk_sheet   : bulk[0],
        bulk_files   : bulk[1],
        bulk_rna     : 'bulk_rna' in drop ? [] : world.resolve('bulk/bulk_rna.tsv'),
        motifs       : 'motifs' in drop ? [] : world.resolve('motifs.jaspar'),
        tfs          : 'tfs' in drop ? [] : world.resolve('tfs.txt'),
        grn_labels   : inputs.grn_labels ? file(inputs.grn_labels, checkIfExists: true) : [],
        tfbind_model : inputs.tfbind_model ? file(inputs.tfbind_model, checkIfExists: true) : [],
    ]
}
