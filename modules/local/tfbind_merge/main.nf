process TFBIND_MERGE {
    tag "${meta.id}"
    label 'process_low'

    conda "${moduleDir}/../../../containers/environment.yml"
    container 'ghcr.io/scregnet/scregnet:0.1.0'

    input:
    tuple val(meta), path(shards, stageAs: 'shards/*', arity: '1..*'), path(atac)
    val(skipped_chroms)

    output:
    tuple val(meta), path("tfbind/*.tfbind.h5ad"), emit: h5ad
    tuple val(meta), path("tfbind/*", type: 'dir'), emit: binding
    tuple val("${task.process}"), val('scregnet'), eval('scregnet --version | sed "s/^scregnet //"'), topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}"
    def shard_list = shards.collect { shard -> "'${shard}'" }.join(' ')
    // contigs the workflow left out of prediction (names checked by predictionShards)
    def skipped = skipped_chroms ? "--skip-chroms '${skipped_chroms.join(',')}'" : ''
    """
    scregnet tfbind merge \\
        --shards ${shard_list} \\
        --atac '${atac}' \\
        ${skipped} \\
        --out 'tfbind/${prefix}.tfbind.h5ad' \\
        --tracks-outdir 'tfbind/${prefix}' \\
        --threads ${task.cpus} \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}"
    """
    mkdir -p 'tfbind/${prefix}'
    touch 'tfbind/${prefix}.tfbind.h5ad'
    touch 'tfbind/${prefix}/0.binding.bed'
    touch 'tfbind/${prefix}/0.binding.bw'
    """
}
