"""Tests of cockpit.core.classifier, one module per module of the package."""
