process SIMULATE {
    tag "${meta.id}"
    label 'process_low'

    conda "${moduleDir}/../../../containers/environment.yml"
    container 'ghcr.io/scregnet/scregnet:0.1.0'

    input:
    tuple val(meta), val(preset)

    output:
    tuple val(meta), path("world", type: 'dir'), emit: world
    tuple val("${task.process}"), val('scregnet'), eval('scregnet --version | sed "s/^scregnet //"'), topic: versions

    when:
    task.ext.when == null || task.ext.when

    script:
    def args = task.ext.args ?: ''
    """
    scregnet simulate \\
        --outdir world \\
        --preset '${preset}' \\
        --threads ${task.cpus} \\
        ${args}
    """

    stub:
    """
    mkdir -p world/samples world/bulk
    printf '>chr1\\nACGT\\n' > world/genome.fa
    printf 'chr1\\t4\\t6\\t4\\t5\\n' > world/genome.fa.fai
    touch world/genes.gtf world/peaks.bed world/tfs.txt world/motifs.jaspar
    touch world/bulk/bulk_rna.tsv world/bulk/ct1.accessibility.bw world/bulk/ct1.TF1.chip.bed
    printf 'tf,chip_bed,accessibility_bw,cell_type\\nTF1,ct1.TF1.chip.bed,ct1.accessibility.bw,ct1\\n' > world/bulk/bulk_sheet.csv
    printf 'sample,bam,fragments,rna,view\\nstub1,samples/stub1.bam,,samples/stub1.rna.h5ad,v1\\n' > world/samplesheet.csv
    touch world/samples/stub1.bam world/samples/stub1.bam.bai world/samples/stub1.rna.h5ad
    """
}
