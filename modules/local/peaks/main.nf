process PEAKS {
    tag "${meta.id}"
    label 'process_low'

    conda "${moduleDir}/../../../containers/environment.yml"
    container 'ghcr.io/scregnet/scregnet:0.1.0'

    input:
    tuple val(meta), path(fragments), path(tbi)
    path(fai)

    output:
    tuple val(meta), path("*.narrowPeak"), emit: peaks
    tuple val("${task.process}"), val('scregnet'), eval('scregnet --version | sed "s/^scregnet //"'), topic: versions
    tuple val("${task.process}"), val('macs3'), eval('macs3 --version | sed "s/^macs3 //"'), topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    scregnet peaks \\
        --fragments '${fragments}' \\
        --genome '${fai}' \\
        --out '${prefix}.narrowPeak' \\
        --threads ${task.cpus} \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch '${prefix}.narrowPeak'
    """
}
