process FRAGMENTS {
    tag "${meta.id}"
    label 'process_medium'

    conda "${moduleDir}/../../../containers/environment.yml"
    container 'ghcr.io/scregnet/scregnet:0.1.0'

    input:
    tuple val(meta), path(bam), path(bai)
    path(fai)

    output:
    tuple val(meta), path("*.fragments.tsv.gz"), path("*.fragments.tsv.gz.tbi"), emit: fragments
    tuple val("${task.process}"), val('scregnet'), eval('scregnet --version | sed "s/^scregnet //"'), topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    scregnet fragments \\
        --bam '${bam}' \\
        --genome '${fai}' \\
        --out '${prefix}.fragments.tsv.gz' \\
        --threads ${task.cpus} \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    echo -n | gzip > '${prefix}.fragments.tsv.gz'
    touch '${prefix}.fragments.tsv.gz.tbi'
    """
}
