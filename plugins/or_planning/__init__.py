"""The or_planning plugin (see plugins/README.md)."""
