"""File formats in and out: every reader validates and every writer is atomic."""
