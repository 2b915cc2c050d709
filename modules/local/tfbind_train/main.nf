process TFBIND_TRAIN {
    tag "${meta.id}"
    label 'process_gpu'

    conda "${moduleDir}/../../../containers/environment.yml"
    container "${ task.accelerator ? 'ghcr.io/scregnet/scregnet:0.1.0-cuda' : 'ghcr.io/scregnet/scregnet:0.1.0' }"

    input:
    tuple val(meta), path(bulk_sheet), path(bulk_files, arity: '1..*')
    path(fasta)
    path(fai)
    path(motifs)

    output:
    tuple val(meta), path("*.pt"), emit: model
    tuple val("${task.process}"), val('scregnet'), eval('scregnet --version | sed "s/^scregnet //"'), topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def prefix = task.ext.prefix ?: 'model'
    def device = task.accelerator ? 'cuda' : 'cpu'
    def jaspar = motifs ? "--motifs ${motifs}" : ''
    """
    scregnet tfbind train \\
        --fasta ${fasta} \\
        --bulk ${bulk_sheet} \\
        --out ${prefix}.pt \\
        --device ${device} \\
        --threads ${task.cpus} \\
        ${jaspar} \\
        ${args}
    """

    stub:
    def prefix = task.ext.prefix ?: 'model'
    """
    touch ${prefix}.pt
    """
}
