"""Repos on other machines, reached over OpenSSH.

`ssh` holds one shared ControlMaster connection per host and the stream-local forwards through it; `daemons`
starts and finds a hosted repo's daemon and connects a `DaemonClient` to it through a forwarded local socket;
`follow` keeps a subscription alive across dropped connections, resuming from the last seq seen.
"""
