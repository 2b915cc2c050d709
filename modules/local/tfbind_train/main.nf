process TFBIND_TRAIN {
    tag "${meta.id}"
    label 'process_gpu'

    conda "${moduleDir}/../../../containers/${ task.accelerator ? 'environment-gpu.yml' : 'environment.yml' }"
    container "${ task.accelerator ? 'ghcr.io/scregnet/scregnet:0.1.0-cuda' : 'ghcr.io/scregnet/scregnet:0.1.0' }"

    input:
    tuple val(meta), val(bulk_sheet_csv), path(bulk_files, arity: '1..*')
    path(fasta)
    path(fai)
    path(motifs)

    output:
    tuple val(meta), path("*.pt"), emit: model
    tuple val("${task.process}"), val('scregnet'), eval('scregnet --version | sed "s/^scregnet //"'), topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: 'model'
    def device = task.accelerator ? 'cuda' : 'cpu'
    def jaspar = motifs ? "--motifs '${motifs}'" : ''
    // --state: the training state after each epoch, kept in the task directory. Where that directory
    // lives in the bucket (Google Batch with scratch false, as -profile googlebatch sets; Fusion), a
    // task that Batch reruns in place after a spot reclaim (maxSpotAttempts) resumes from it instead
    // of starting over; such a rerun finds the first attempt's bulk_sheet.csv, so `>|` replaces it
    // (process.shell sets noclobber).
    // the bulk sheet arrives as text (its file columns are base names of the staged bulk_files):
    // one single-quoted printf argument per line, quotes inside a line escaped
    def sheet_lines = bulk_sheet_csv.readLines().collect { line -> "'${line.replace("'", "'\\''")}'" }.join(' ')
    """
    printf '%s\\n' ${sheet_lines} >| bulk_sheet.csv

    scregnet tfbind train \\
        --fasta '${fasta}' \\
        --bulk bulk_sheet.csv \\
        --out '${prefix}.pt' \\
        --state tfbind_train.state \\
        --device ${device} \\
        --threads ${task.cpus} \\
        ${jaspar} \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: 'model'
    """
    touch '${prefix}.pt'
    """
}
