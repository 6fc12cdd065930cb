"""Tests of cockpit.demo that need no daemon: the workspace it lays out and the scripts its tasks run."""
