"""Small pieces every part of `nas` uses: the error types, atomic file writes, YAML-section schemas, tables."""
