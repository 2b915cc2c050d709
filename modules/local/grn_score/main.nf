process GRN_SCORE {
    tag "${meta.id}:${shard.id}"
    label 'process_gpu'

    conda "${moduleDir}/../../../containers/${ task.accelerator ? 'environment-gpu.yml' : 'environment.yml' }"
    container "${ task.accelerator ? 'ghcr.io/scregnet/scregnet:0.1.0-cuda' : 'ghcr.io/scregnet/scregnet:0.1.0' }"

    input:
    tuple val(meta), path(rna, stageAs: 'rna/*', arity: '1..*'), path(priors, stageAs: 'priors/*', arity: '0..*'), val(shard), path(model)
    path(gtf)
    path(tfs)

    output:
    tuple val(meta), path("*.tsv"), emit: shard
    tuple val("${task.process}"), val('scregnet'), eval('scregnet --version | sed "s/^scregnet //"'), topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "grn.${shard.id}"
    // the views (and binding priors) the model was trained on, in the same order
    def views = rna.collect { h5ad -> "--rna '${h5ad}'" }.join(' ')
    def prior = priors.collect { h5ad -> "--prior '${h5ad}'" }.join(' ')
    // a model trained on binding priors publishes the rank mean with their binding near the TSSs
    def binding = priors ? "${prior} --gtf '${gtf}'" : ''
    def tf_list = tfs ? "--tfs '${tfs}'" : ''
    def device = task.accelerator ? 'cuda' : 'cpu'
    // shard: [ id: 'shard1', index: 1, count: N ]: the index-th of count equal groups of the TFs
    """
    scregnet grn score \\
        --model '${model}' \\
        ${views} \\
        ${binding} \\
        ${tf_list} \\
        --shard '${shard.index}/${shard.count}' \\
        --out '${prefix}.tsv' \\
        --device ${device} \\
        --threads ${task.cpus} \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "grn.${shard.id}"
    """
    touch '${prefix}.tsv'
    """
}
