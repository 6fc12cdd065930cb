"""agent-cockpit: supervise AI coding agents across several git repositories."""

__version__ = "0.1.0"
