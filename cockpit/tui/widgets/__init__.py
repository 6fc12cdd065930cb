"""The cockpit's widgets."""
