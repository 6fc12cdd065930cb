"""A fake model server speaking the real agents' wire protocols, scripted per test."""

from cockpit_testkit.model_server.script import Commit, Done, Shell, Step, Tool, Write
from cockpit_testkit.model_server.server import ModelServer, Recorded

__all__ = ["Commit", "Done", "ModelServer", "Recorded", "Shell", "Step", "Tool", "Write"]
