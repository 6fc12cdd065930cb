"""Imports the daemon's optional parts so each registers itself with `register_extension`."""
