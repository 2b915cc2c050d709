"""scregnet: single-cell chromatin to regulatory networks.

Stages (each a subpackage, meeting only through files on disk):
``atac`` (counts), ``impute`` (scDTL), ``tfbind`` (scFAN), ``grn`` (DeepMCL).
"""

__version__ = "0.1.0"

__all__ = ["__version__"]
