process GRN_MERGE {
    tag "${meta.id}"
    label 'process_low'

    conda "${moduleDir}/../../../containers/environment.yml"
    container 'ghcr.io/scregnet/scregnet:0.1.0'

    input:
    tuple val(meta), path(shards, stageAs: 'shards/*', arity: '1..*')

    output:
    tuple val(meta), path("grn_edges.tsv"), emit: edges
    tuple val(meta), path("grn_attention.tsv"), emit: attention
    tuple val("${task.process}"), val('scregnet'), eval('scregnet --version | sed "s/^scregnet //"'), topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    // every shard of GRN_SCORE (the workflow sorts them by file name)
    def shard_list = shards.collect { shard -> "'${shard}'" }.join(' ')
    """
    scregnet grn merge \\
        --shards ${shard_list} \\
        --out grn_edges.tsv \\
        --attention-out grn_attention.tsv \\
        --threads ${task.cpus} \\
        ${args}
    """

    stub:
    """
    touch grn_edges.tsv
    touch grn_attention.tsv
    """
}
