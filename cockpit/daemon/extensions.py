"""Imports the daemon's parts so each registers itself with `server.register_extension`."""

import importlib

PARTS = ("cockpit.daemon.execution", "cockpit.daemon.merge", "cockpit.daemon.delegation")

for _name in PARTS:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as _exc:
        if _exc.name != _name:
            raise
