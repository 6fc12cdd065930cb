"""The Textual cockpit: `make_app(path)` builds it (see `cockpit.tui.app`)."""
