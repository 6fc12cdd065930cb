#!/usr/bin/env python3
"""A fake `[classifier] command` for tests: reads the prompt on stdin and answers according to a mode.

Usage: fake_classifier.py MODE [--pid-file PATH] [PROMPT]

Modes: good, prose, fence, wrapped, argv, garbage, invalid-json, bad-scope, bad-verb, unknown-peer,
bad-depends, small-delegates, fail, hang, straggler, escaped, flood. `hang` writes its own pid and a child's
pid (one per line) to the pid file, then sleeps; the tests check both are gone after the timeout.
`straggler` answers and exits but leaves a child holding stdout open; `escaped` does too, from a child in
its own session.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from typing import Any


def _peers(prompt: str) -> list[str]:
    m = re.search(r"<peer_repos>\n(.*?)\n</peer_repos>", prompt, re.S)
    if not m or m.group(1).strip() == "(none)":
        return []
    return [line.strip() for line in m.group(1).splitlines() if line.strip()]


def _plan(peer: str) -> dict[str, Any]:
    return {
        "scope": "large",
        "reason": "the fake says so",
        "title": "Add /export and update the client",
        "plan": [
            {"n": 1, "verb": "add", "description": "Add the /export endpoint", "peer": None},
            {"n": 2, "verb": "test", "description": "Test /export", "depends_on": [1]},
            {"n": 3, "verb": "delegate", "description": "Update the client", "peer": peer, "depends_on": [1]},
            {"n": 4, "verb": "verify", "description": "Verify end to end", "depends_on": [1, 2, 3]},
        ],
        "questions": [],
    }


def main(argv: list[str]) -> int:
    if not argv:
        print("usage: fake_classifier.py MODE [--pid-file PATH] [PROMPT]", file=sys.stderr)
        return 2
    mode, rest = argv[0], argv[1:]
    pid_file = None
    if "--pid-file" in rest:
        i = rest.index("--pid-file")
        pid_file = rest[i + 1]
        del rest[i : i + 2]
    prompt = sys.stdin.read()
    peers = _peers(prompt)
    peer = peers[0] if peers else "nobody"

    if mode == "good":
        answer = _plan(peer)
        answer["reason"] = f"read {len(prompt)} chars on stdin; peers: {', '.join(peers)}"
        print(json.dumps(answer))
    elif mode == "prose":
        answer = _plan(peer)
        answer["plan"][0]["description"] = 'Add {braces} and "quotes" \\ and a } to /export'
        print("Sure! Here is my {analysis} of the task:\n")
        print(json.dumps(answer, indent=2))
        print("\nHope this helps {really}.")
    elif mode == "fence":
        print("Here you go:\n```json\n" + json.dumps(_plan(peer), indent=2) + "\n```\nDone.")
    elif mode == "wrapped":
        inner = "```json\n" + json.dumps(_plan(peer)) + "\n```"
        print(json.dumps({"type": "result", "is_error": False, "result": inner}))
    elif mode == "argv":
        answer = _plan(peer)
        got = rest[-1] if rest else ""
        answer["reason"] = f"argv prompt ok={got == prompt}"
        print(json.dumps(answer))
    elif mode == "garbage":
        print("I am not sure what you mean. Could you rephrase?")
    elif mode == "invalid-json":
        print("{scope: small, plan: [}")
    elif mode == "bad-scope":
        print(json.dumps({**_plan(peer), "scope": "medium"}))
    elif mode == "bad-verb":
        answer = _plan(peer)
        answer["plan"][1]["verb"] = "deploy"
        print(json.dumps(answer))
    elif mode == "unknown-peer":
        print(json.dumps(_plan("mobile")))
    elif mode == "bad-depends":
        answer = _plan(peer)
        answer["plan"][1]["depends_on"] = [4]
        print(json.dumps(answer))
    elif mode == "small-delegates":
        print(json.dumps({**_plan(peer), "scope": "small"}))
    elif mode == "fail":
        print("model overloaded, try later", file=sys.stderr)
        return 3
    elif mode == "hang":
        child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(300)"])
        if pid_file:
            with open(pid_file + ".tmp", "w", encoding="utf-8") as fh:
                fh.write(f"{os.getpid()}\n{child.pid}\n")
            os.replace(pid_file + ".tmp", pid_file)
        sys.stdout.write("thinking...\n")
        sys.stdout.flush()
        time.sleep(300)
    elif mode in ("straggler", "escaped"):
        # Answer, leave a child holding stdout open (in its own session when "escaped"), and exit.
        print(json.dumps(_plan(peer)), flush=True)
        sleeper = [sys.executable, "-c", "import time; time.sleep(300)"]
        child = subprocess.Popen(sleeper, start_new_session=mode == "escaped")
        if pid_file:
            with open(pid_file + ".tmp", "w", encoding="utf-8") as fh:
                fh.write(f"{os.getpid()}\n{child.pid}\n")
            os.replace(pid_file + ".tmp", pid_file)
    elif mode == "flood":
        line = "x" * 1023 + "\n"
        while True:
            sys.stdout.write(line)
    else:
        print(f"unknown mode {mode}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
