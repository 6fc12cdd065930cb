"""The cockpit's screens."""
