process GRN_TRAIN {
    tag "${meta.id}"
    label 'process_gpu'

    conda "${moduleDir}/../../../containers/${ task.accelerator ? 'environment-gpu.yml' : 'environment.yml' }"
    container "${ task.accelerator ? 'ghcr.io/scregnet/scregnet:0.1.0-cuda' : 'ghcr.io/scregnet/scregnet:0.1.0' }"

    input:
    tuple val(meta), path(rna, stageAs: 'rna/*', arity: '1..*'), path(labels), path(priors, stageAs: 'priors/*', arity: '0..*')
    path(gtf)

    output:
    tuple val(meta), path("*.pt"), emit: model
    tuple val("${task.process}"), val('scregnet'), eval('scregnet --version | sed "s/^scregnet //"'), topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: 'grn_model'
    // views and priors in the order given (the workflow sorts them by sample id)
    def views = rna.collect { h5ad -> "--rna '${h5ad}'" }.join(' ')
    def prior = priors.collect { h5ad -> "--prior '${h5ad}'" }.join(' ')
    // supervision: known edges, else the TF-binding priors near the GTF's TSSs
    def supervision = labels ? "--labels '${labels}'" : "${prior} --gtf '${gtf}'"
    def device = task.accelerator ? 'cuda' : 'cpu'
    """
    scregnet grn train \\
        ${views} \\
        ${supervision} \\
        --out '${prefix}.pt' \\
        --device ${device} \\
        --threads ${task.cpus} \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: 'grn_model'
    """
    touch '${prefix}.pt'
    """
}
