process GRN {
    tag "${meta.id}"
    label 'process_gpu'

    conda "${moduleDir}/../../../containers/${ task.accelerator ? 'environment-gpu.yml' : 'environment.yml' }"
    container "${ task.accelerator ? 'ghcr.io/scregnet/scregnet:0.1.0-cuda' : 'ghcr.io/scregnet/scregnet:0.1.0' }"

    input:
    tuple val(meta), path(rna, stageAs: 'rna/*', arity: '1..*'), path(labels), path(priors, stageAs: 'priors/*', arity: '0..*')
    path(gtf)
    path(tfs)

    output:
    tuple val(meta), path("grn_edges.tsv"), emit: edges
    tuple val(meta), path("grn_attention.tsv"), emit: attention
    tuple val("${task.process}"), val('scregnet'), eval('scregnet --version | sed "s/^scregnet //"'), topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def views = rna.collect { h5ad -> "--rna '${h5ad}'" }.join(' ')
    def prior = priors.collect { h5ad -> "--prior '${h5ad}'" }.join(' ')
    def supervision = labels ? "--labels '${labels}'" : "${prior} --gtf '${gtf}'"
    def tf_list = tfs ? "--tfs '${tfs}'" : ''
    def device = task.accelerator ? 'cuda' : 'cpu'
    """
    scregnet grn \\
        ${views} \\
        ${supervision} \\
        ${tf_list} \\
        --out grn_edges.tsv \\
        --attention-out grn_attention.tsv \\
        --device ${device} \\
        --threads ${task.cpus} \\
        ${args}
    """

    stub:
    """
    touch grn_edges.tsv
    touch grn_attention.tsv
    """
}
