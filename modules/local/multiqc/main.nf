// MULTIQC consumes the 'versions' topic (the software versions table), so its own version is a
// plain emit: a process that also published to the topic it waits on would never finish.
process MULTIQC {
    tag "${meta.id}"
    label 'process_single'

    conda 'bioconda::multiqc=1.29'
    container 'quay.io/biocontainers/multiqc:1.29--pyhdfd78af_0'

    input:
    tuple val(meta), path(multiqc_files, stageAs: '?/*')
    path(multiqc_config)

    output:
    tuple val(meta), path("*multiqc_report.html"), emit: report
    tuple val(meta), path("*_data"), emit: data
    tuple val("${task.process}"), val('multiqc'), eval('multiqc --version | sed "s/.* //"'), emit: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    def config = multiqc_config ? "--config '${multiqc_config}'" : ''
    """
    multiqc \\
        --force \\
        ${config} \\
        ${args} \\
        .
    """

    stub:
    """
    mkdir multiqc_data
    touch multiqc_report.html
    """
}
