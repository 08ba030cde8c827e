"""Developer and test scripts (not part of the installed packages)."""
