"""Self-contained HTML report (embedded matplotlib figures) and MultiQC custom content."""
