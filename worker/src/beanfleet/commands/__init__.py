"""Click commands, one module per family; each exports ``COMMANDS``."""
