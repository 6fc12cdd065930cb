#!/bin/sh
# The fast path of `cockpit hook needs-input|resolved|done|turn-ended`, for agents' hooks inside a cockpit
# pane: every pane has COCKPIT_HOOK="sh <this file>", so a hook command `$COCKPIT_HOOK needs-input` costs a few milliseconds
# instead of a Python start. It writes one signal file (format: cockpit/core/signals.py) with sh, date and
# mv only: a temporary dot-file first, renamed into place, so the daemon never reads half of it.
# Anything else (--message, --stdin, --repo, no COCKPIT_* environment, a date without %N) is handed to the
# full Python entry point, `python -m cockpit.hook`, which behaves the same.

full() {
    exec "${COCKPIT_PYTHON:-python3}" -m cockpit.hook "$@"
}

case "$1" in
    needs-input) kind=needs_input ;;
    resolved) kind=resolved ;;
    done) kind=done ;;
    turn-ended) kind=turn_ended ;;
    *) full "$@" ;;
esac
[ $# -eq 1 ] && [ -n "$COCKPIT_SIGNALS" ] && [ -d "$COCKPIT_SIGNALS" ] || full "$@"
case "$COCKPIT_TASK_ID" in
    '' | *[!0-9]*) full "$@" ;;
esac
ns=$(date +%s%N)
case "$ns" in
    '' | *[!0-9]*) full "$@" ;;
esac
secs=${ns%?????????}
frac=${ns#"$secs"}
name=$(printf '%020d-%d-task%d-%s.json' "$ns" "$$" "$COCKPIT_TASK_ID" "$kind")
tmp="$COCKPIT_SIGNALS/.$name.tmp"
printf '{"data": {"source": "hook"}, "kind": "%s", "task_id": %d, "ts": %s.%s}' \
    "$kind" "$COCKPIT_TASK_ID" "$secs" "$frac" >"$tmp" && mv -f "$tmp" "$COCKPIT_SIGNALS/$name"
