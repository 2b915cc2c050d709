process CLUSTER {
    tag "${meta.id}"
    label 'process_low'

    conda "${moduleDir}/../../../containers/environment.yml"
    container 'ghcr.io/scregnet/scregnet:0.1.0'

    input:
    tuple val(meta), path(atac)

    output:
    tuple val(meta), path("*.clustered.h5ad"), emit: h5ad
    tuple val("${task.process}"), val('scregnet'), eval('scregnet --version | sed "s/^scregnet //"'), topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    scregnet cluster \\
        --atac '${atac}' \\
        --out '${prefix}.clustered.h5ad' \\
        --threads ${task.cpus} \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch '${prefix}.clustered.h5ad'
    """
}
