"""Fixtures for a private tmux server per test (filled in with the tmux layer)."""
