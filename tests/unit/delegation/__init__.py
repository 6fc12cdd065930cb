"""Tests of cockpit.core.delegation that need no daemon."""
