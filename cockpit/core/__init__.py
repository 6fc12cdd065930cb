"""Headless core: models, state machine, event store, git, tmux, gates, merge, delegation.

Nothing here imports textual; tests/unit/test_layers.py enforces it.
"""
