"""Headless core: models, state machine, event store, git, tmux, gates, merge, delegation. Never imports textual."""
