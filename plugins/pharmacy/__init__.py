"""The pharmacy plugin (see plugins/README.md)."""
