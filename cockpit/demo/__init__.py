"""The built-in demo workspace: two real git repos whose daemons hold tasks in every interesting state.

Everything is real: git repositories (`backend`, a small reports API, and `frontend`, its client, each
with code and unittest tests), a daemon per repo on its socket, a private tmux server (`[tmux] socket_name`)
for the agents' panes, the script agent doing the work and the gates (`python -m unittest`) judging it. No
network and no LLM is needed.

`build` lays the workspace out, `start` starts both daemons, `seed` drives them through their sockets (the
very ops the CLI and the cockpit send) until every task is where the demo wants it, waiting on the daemons'
event streams, never on a clock:

====================  ========================================================================================
backend#1 delegating  "Add an /export endpoint and have frontend redesign the export page": large, approved by
                      a person; its agent did the backend part and the task waits for frontend#1, which the
                      step executor created and which is **pending** there (large: a person must approve it)
backend#2 asking      the agent asks a question in its pane: executing, `needs_input`
backend#3 review      code and a passing test committed: awaiting_review, every gate passed
backend#4 merged      reviewed and merged into main: done, with a rollback point (`u` undoes it)
backend#5 failed      a failing test that the fix attempt does not fix: failed, the `tests` gate's log kept
====================  ========================================================================================

Every seeded backend task carries its own script, so it runs the script agent whatever `[agent] backend`
says. With `agent="claude"` (or another backend) the repos are configured for that agent, so what is not
scripted runs it: the frontend task, once approved, and every task created in the cockpit.

`stop` stops both daemons and kills the private tmux server; `DemoWorkspace.state_file` records what `stop`
needs, so a kept demo can be stopped later (`cockpit demo --stop --dir DIR`).

The package: `workspace` (build, start and stop it; the repos' files are package data under `repos/`, read
with importlib.resources), `scripts` (the script each seeded task runs), `seeding` (driving the daemons until
every task is where the demo wants it).
"""
