"""Sources of the sync engine, one module per system: a hook's reads as pages and cursors."""
