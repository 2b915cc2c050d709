process TRACKS {
    tag "${meta.id}"
    label 'process_low'

    conda "${moduleDir}/../../../containers/environment.yml"
    container 'ghcr.io/scregnet/scregnet:0.1.0'

    input:
    tuple val(meta), path(fragments), path(tbi), path(clustered)
    path(fai)

    output:
    tuple val(meta), path("tracks/*", type: 'dir'), emit: tracks
    tuple val("${task.process}"), val('scregnet'), eval('scregnet --version | sed "s/^scregnet //"'), topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    scregnet tracks \\
        --fragments '${fragments}' \\
        --clusters '${clustered}' \\
        --genome '${fai}' \\
        --outdir 'tracks/${prefix}' \\
        --threads ${task.cpus} \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p 'tracks/${prefix}'
    touch 'tracks/${prefix}/0.bw'
    """
}
