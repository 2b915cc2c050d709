process IMPUTE {
    tag "${meta.id}"
    label 'process_gpu'

    conda "${moduleDir}/../../../containers/${ task.accelerator ? 'environment-gpu.yml' : 'environment.yml' }"
    container "${ task.accelerator ? 'ghcr.io/scregnet/scregnet:0.1.0-cuda' : 'ghcr.io/scregnet/scregnet:0.1.0' }"

    input:
    tuple val(meta), path(rna)
    path(bulk_rna)

    output:
    tuple val(meta), path("*.imputed.h5ad"), emit: h5ad
    tuple val(meta), path("*.imputed.model.pt"), emit: model
    tuple val(meta), path("*.imputed.loss.tsv"), emit: loss
    tuple val("${task.process}"), val('scregnet'), eval('scregnet --version | sed "s/^scregnet //"'), topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    def bulk = bulk_rna ? "--bulk '${bulk_rna}'" : ''
    def device = task.accelerator ? 'cuda' : 'cpu'
    """
    scregnet impute \\
        --rna '${rna}' \\
        ${bulk} \\
        --view '${meta.view}' \\
        --out '${prefix}.imputed.h5ad' \\
        --device ${device} \\
        --threads ${task.cpus} \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    touch '${prefix}.imputed.h5ad'
    touch '${prefix}.imputed.model.pt'
    touch '${prefix}.imputed.loss.tsv'
    """
}
