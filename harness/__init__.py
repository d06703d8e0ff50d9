"""Placeholder package: see the issue tracker for what lands here."""
