"""Tests of cockpit.core.merge: the git engine, the orchestrator recording it, the guards a merge keeps."""
