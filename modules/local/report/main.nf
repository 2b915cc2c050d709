process REPORT {
    tag "${meta.id}"
    label 'process_single'

    conda "${moduleDir}/../../../containers/environment.yml"
    container 'ghcr.io/scregnet/scregnet:0.1.0'

    input:
    tuple val(meta), path(atac, stageAs: 'results/atac/*'), path(tracks, stageAs: 'results/tracks/*'), path(impute, stageAs: 'results/impute/*'), path(tfbind, stageAs: 'results/tfbind/*'), path(grn, stageAs: 'results/grn/*'), val(expected)

    output:
    tuple val(meta), path("report/report.html"), emit: html
    tuple val(meta), path("report/*_mqc.tsv"), emit: mqc, optional: true
    tuple val("${task.process}"), val('scregnet'), eval('scregnet --version | sed "s/^scregnet //"'), topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    // the fragment-length figure comes from the counts (uns['fragment_lengths']): no fragments file
    // is staged
    // the results the run should have written ("atac=s1,s2", "grn", ...): the report opens with
    // any that are missing (a task that failed under errorStrategy 'ignore')
    def expect = expected.collect { item -> "--expect '${item}'" }.join(' ')
    """
    mkdir -p results/atac

    scregnet report \\
        --results results \\
        --out report/report.html \\
        --threads ${task.cpus} \\
        ${expect} \\
        ${args}
    """

    stub:
    """
    mkdir -p report
    touch report/report.html
    touch report/scregnet_atac_qc_mqc.tsv
    """
}
