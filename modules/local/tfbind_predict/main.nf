process TFBIND_PREDICT {
    tag "${meta.id}:${chrom}"
    label 'process_gpu'

    conda "${moduleDir}/../../../containers/environment.yml"
    container "${ task.accelerator ? 'ghcr.io/scregnet/scregnet:0.1.0-cuda' : 'ghcr.io/scregnet/scregnet:0.1.0' }"

    input:
    tuple val(meta), path(atac), path(fragments), path(tbi), val(chrom), path(model)
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
    def prefix = task.ext.prefix ?: "${meta.id}.${chrom}"
    def device = task.accelerator ? 'cuda' : 'cpu'
    def jaspar = motifs ? "--motifs ${motifs}" : ''
    """
    scregnet tfbind predict \\
        --model ${model} \\
        --fasta ${fasta} \\
        --atac ${atac} \\
        --fragments ${fragments} \\
        --chrom ${chrom} \\
        ${jaspar} \\
        --out ${prefix}.tfbind.h5ad \\
        --device ${device} \\
        --threads ${task.cpus} \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: "${meta.id}.${chrom}"
    """
    touch ${prefix}.tfbind.h5ad
    """
}
