"""Mermaid DAG (from ``nextflow.server.previewDag``) -> process graph ``{process: {upstream}}``.

Process nodes are drawn ``vN([NAME])``; take/emit nodes ``vN["name"]`` and conditions ``vN{ }``
are not processes. An edge between two processes may pass through non-process nodes, so the
upstream set of a process is every process that reaches it through non-process nodes only.
Control edges into ``if`` subgraphs (``vN --> sN``) carry no data and are ignored.
"""

from __future__ import annotations

import re

NODE = re.compile(r"^\s*(v\d+)(\(\[(.+?)\]\)|\[\"(.*?)\"\]|\{.*?\})\s*$")
EDGE = re.compile(r"^\s*(v\d+)\s*-->\s*(v\d+)\s*$")


def process_graph(mermaid: str) -> dict[str, set[str]]:
    """Process name -> names of the processes whose outputs it consumes."""
    kind: dict[str, str | None] = {}
    edges: dict[str, set[str]] = {}
    for line in mermaid.splitlines():
        node = NODE.match(line)
        if node:
            kind[node.group(1)] = node.group(3)  # process name, or None for other nodes
            continue
        edge = EDGE.match(line)
        if edge:
            edges.setdefault(edge.group(2), set()).add(edge.group(1))
    graph: dict[str, set[str]] = {}
    for node, name in kind.items():
        if name is None:
            continue
        upstream: set[str] = set()
        stack, seen = list(edges.get(node, ())), set()
        while stack:
            src = stack.pop()
            if src in seen:
                continue
            seen.add(src)
            if kind.get(src) is not None:
                upstream.add(str(kind[src]))
            else:
                stack.extend(edges.get(src, ()))
        graph.setdefault(name, set()).update(upstream)
    return graph


def graph_diff(got: dict[str, set[str]], want: dict[str, set[str]]) -> list[str]:
    """Human-readable differences between two process graphs (empty when equal)."""
    lines = []
    for name in sorted(set(got) | set(want)):
        if name not in got:
            lines.append(f"{name}: in the stage graph but not in the Nextflow DAG")
        elif name not in want:
            lines.append(f"{name}: in the Nextflow DAG but not in the stage graph")
        elif got[name] != want[name]:
            extra = sorted(got[name] - want[name])
            missing = sorted(want[name] - got[name])
            lines.append(f"{name}: Nextflow has extra upstream {extra}, lacks {missing}")
    return lines
