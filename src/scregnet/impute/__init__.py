"""Stage 2: scDTL-style imputation of scRNA counts (bulk-to-single-cell transfer learning)."""
