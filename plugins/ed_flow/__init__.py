"""The ed_flow plugin (see plugins/README.md)."""
