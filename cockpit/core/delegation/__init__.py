"""Cross-repo delegation: creating, showing, approving and waiting on tasks in a peer repo of the workspace.

A peer is reached through its daemon's socket when the daemon is up, and otherwise straight through its store
with the very same core code (`TaskService` over the peer's paths), so both paths share dedup and the human
gate. A fallback create lands in state `created` and the peer's daemon classifies it when it starts.

A wait blocks server-side in the peer's daemon (`wait_task`); with the daemon down it blocks on a file watch
of the peer's store and its `daemon.json`, and switches to the socket the moment the daemon comes up (and back
to the store if the daemon goes away). Nothing polls.

`ops.install_ops(ops)` adds the sender-side socket ops (`create_remote_task`, `get_remote_task`,
`approve_remote_task`, `wait_remote_task`, `list_peers`), the peer-side `task_states`, and a task decorator
that fills in the live states of a task's delegated children.

The package: `peers` (a peer by name, and the open line to it: its daemon or its store), `sender` (the remote
ops on behalf of one sender repo, `Delegation`), `wait` (waiting on a peer's task), `describe` (a peer task in
one line, and what to do about it), `ops` (the socket ops). The daemon's side is `cockpit.daemon.delegation`.
"""
