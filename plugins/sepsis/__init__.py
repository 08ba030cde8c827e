"""The sepsis plugin (see plugins/README.md)."""
