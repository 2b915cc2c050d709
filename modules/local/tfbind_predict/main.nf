process TFBIND_PREDICT {
    tag "${meta.id}:${shard.id}"
    label 'process_gpu'

    conda "${moduleDir}/../../../containers/${ task.accelerator ? 'environment-gpu.yml' : 'environment.yml' }"
    container "${ task.accelerator ? 'ghcr.io/scregnet/scregnet:0.1.0-cuda' : 'ghcr.io/scregnet/scregnet:0.1.0' }"

    input:
    tuple val(meta), path(atac), path(fragments), path(tbi), val(shard), path(model)
    path(fasta)
    path(fai)
    path(motifs)

    output:
    tuple val(meta), path("*.tfbind.h5ad"), emit: shard
    tuple val("${task.process}"), val('scregnet'), eval('scregnet --version | sed "s/^scregnet //"'), topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: "${meta.id}.${shard.id}"
    def device = task.accelerator ? 'cuda' : 'cpu'
    def jaspar = motifs ? "--motifs '${motifs}'" : ''
    // shard: [ id:, chroms: [ contig names ] ]; names were checked by the workflow (predictionShards)
    def chroms = shard.chroms.join(',')
    """
    scregnet tfbind predict \\
        --model '${model}' \\
        --fasta '${fasta}' \\
        --atac '${atac}' \\
        --fragments '${fragments}' \\
        --chrom '${chroms}' \\
        ${jaspar} \\
        --out '${prefix}.tfbind.h5ad' \\
        --device ${device} \\
        --threads ${task.cpus} \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}.${shard.id}"
    """
    touch '${prefix}.tfbind.h5ad'
    """
}
