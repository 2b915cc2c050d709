process COUNT {
    tag "${meta.id}"
    label 'process_medium'

    conda "${moduleDir}/../../../containers/environment.yml"
    container 'ghcr.io/scregnet/scregnet:0.1.0'

    input:
    tuple val(meta), path(fragments), path(tbi), path(peaks)
    path(fai)
    path(gtf)

    output:
    tuple val(meta), path("*.atac.h5ad"), emit: h5ad
    tuple val(meta), path("*.qc.tsv"), emit: qc
    tuple val("${task.process}"), val('scregnet'), eval('scregnet --version | sed "s/^scregnet //"'), topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    scregnet count \\
        --fragments '${fragments}' \\
        --peaks '${peaks}' \\
        --genome '${fai}' \\
        --tss '${gtf}' \\
        --out '${prefix}.atac.h5ad' \\
        --qc '${prefix}.qc.tsv' \\
        --threads ${task.cpus} \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch '${prefix}.atac.h5ad'
    touch '${prefix}.qc.tsv'
    """
}
