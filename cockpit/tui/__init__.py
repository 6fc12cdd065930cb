"""The Textual cockpit: `make_app(path)` builds it (see `cockpit.tui.app`)."""

import os

# Frames at up to 120/s, so a key's frame waits at most ~8 ms for its tick (60/s: ~17 ms). Textual reads this
# when it is first imported, which importing any cockpit.tui module before textual ensures; a value the user
# set wins.
os.environ.setdefault("TEXTUAL_FPS", "120")
