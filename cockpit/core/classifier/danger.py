"""What the heuristic refuses and what is never small: each needs a person to read it."""

from __future__ import annotations

import re
from collections.abc import Sequence

from cockpit.core.classifier.clauses import Clause, inflection_bases, leading_verb, words_of
from cockpit.core.classifier.vocabulary import REJECT_RULES

# Shell commands, read token by token (linear in the text, whatever it repeats).
_COMMAND_SPLIT_RE = re.compile(r"[;|&\n`()]+|\$\(|(?<=[.!?])\s")
_PUSH_FORCE_FLAGS = frozenset({"-f", "--force", "--force-with-lease", "--force-if-includes", "--mirror",
                               "--delete", "-d", "--prune"})


def _short_flags(token: str) -> str:
    return token[1:] if token.startswith("-") and not token.startswith("--") else ""


def _shell_danger(text: str) -> str | None:
    """What a destructive shell command in `text` would do ("run rm -rf"), or None.

    `rm` with both a recursive and a force flag in any spelling (-rf, -r -f, -Rf, --recursive --force), and a
    `push` that forces, mirrors or deletes (-f, --force..., +ref, :ref, --mirror, --delete).
    """
    for segment in _COMMAND_SPLIT_RE.split(text):
        tokens = [t.strip("\"'.,") for t in segment.lower().split()]
        rm = recursive = force = push = False
        for token in tokens:
            if token in ("rm", "/bin/rm", "rmdir"):
                rm, recursive, force = True, False, False
            elif rm:
                flags = _short_flags(token)
                recursive = recursive or token == "--recursive" or "r" in flags
                force = force or token == "--force" or "f" in flags
                if recursive and force:
                    return "run rm -rf"
            if token == "push":
                push = True
            elif push and (token in _PUSH_FORCE_FLAGS or token.startswith("--force")
                           or (len(token) > 1 and token[0] in "+:" and token[1] != ":")):
                return "force-push"
    return None


def reject_reason(text: str) -> str | None:
    if not text.strip() or not words_of(text):
        return "empty description: there is nothing to do."
    danger = _shell_danger(text)
    if danger == "run rm -rf":
        return "asks to run rm -rf: deleting files wholesale is not a task to hand an agent."
    if danger == "force-push":
        return "asks to force-push: rewriting pushed history is refused."
    for pattern, what, why in REJECT_RULES:
        if pattern.search(text):
            return f"asks to {what}: {why}."
    return None


# Never small, whatever else the text says: each of these needs a person to read the plan.
_DESTRUCTIVE_VERBS = frozenset(
    {"wipe", "destroy", "nuke", "erase", "purge", "truncate", "overwrite", "clobber", "obliterate", "shred"}
)
# Destructive only as the verb of a clause ("empty utils.py", not "on empty input").
_DESTRUCTIVE_LEADS = frozenset({"empty", "blank", "zero", "gut", "trash", "scrap", "discard", "clear"})
_DESTRUCTIVE_RE = re.compile(
    r"\b(?:replace|overwrite|clear|blank\s+out|strip)\s+(?:the\s+|all\s+)?(?:contents?|bod(?:y|ies)|"
    r"everything)\b|\bdelete\s+(?:all|everything|every)\b|\bremove\s+(?:all|everything|every)\b",
    re.I,
)
_SECURITY_WORDS = frozenset(
    {"auth", "authn", "authz", "authenticate", "authentication", "authorize", "authorise", "authorization",
     "authorisation", "login", "logins", "logon", "logout", "signin", "signup", "password", "passwords",
     "passwd", "passphrase", "credential", "credentials", "permission", "permissions", "acl", "acls",
     "rbac", "csrf", "xss", "cors", "csp", "encrypt", "encrypted", "encryption", "decrypt", "decryption",
     "crypto", "cryptography", "signature", "signatures", "certificate", "certificates", "cert", "certs",
     "tls", "ssl", "oauth", "sso", "saml", "jwt", "token", "tokens", "session", "sessions", "secret",
     "secrets", "2fa", "mfa", "otp", "totp", "sudo", "sudoers", "privilege", "privileges", "firewall",
     "sandbox", "sanitize", "sanitise", "sanitizer", "escaping", "hmac", "nonce", "apikey", "ssh",
     "keyring", "keychain", "security", "vulnerability", "cve", "exploit"}
)
_SHELL_WORDS = frozenset(
    {"sudo", "su", "curl", "wget", "chmod", "chown", "chgrp", "dd", "mkfs", "kill", "pkill", "killall",
     "shutdown", "reboot", "eval", "exec", "bash", "sh", "zsh", "rm", "rmdir", "mv", "xargs", "crontab",
     "systemctl", "iptables", "nc", "netcat", "ssh", "scp", "rsync", "docker", "kubectl", "npx"}
)
_SHELL_GIT = frozenset({"push", "reset", "clean", "rebase", "filter-branch", "filter-repo", "update-ref",
                        "gc", "prune", "reflog", "checkout", "restore", "branch", "tag", "remote", "config"})
_RUN_VERBS = frozenset({"run", "execute", "exec", "invoke", "type", "launch"})


def _word_parts(word: str) -> list[str]:
    """A word and its parts ("auth.py" -> auth, py; "login_form" -> login, form)."""
    return [word, *(p for p in re.split(r"[./_-]+", word) if p and p != word)]


def never_small(text: str, clauses: Sequence[Clause]) -> str | None:
    """Why a task that would otherwise be small needs a person's review, or None."""
    words = words_of(text)
    for w in dict.fromkeys(words):
        if not _DESTRUCTIVE_VERBS.isdisjoint(inflection_bases(w)):
            return f'says "{w}": destructive changes need a reviewed plan.'
    for i, w in enumerate(words):
        if w == "git" and i + 1 < len(words) and words[i + 1] in _SHELL_GIT:
            return f'runs "git {words[i + 1]}": shell commands need a reviewed plan.'
    match = _DESTRUCTIVE_RE.search(text)
    if match is not None:
        return f'says "{" ".join(match.group().split())}": destructive changes need a reviewed plan.'
    for w in dict.fromkeys(words):
        hit = next((p for p in _word_parts(w) if p in _SECURITY_WORDS), None)
        if hit is not None:
            return f'touches a security-sensitive area ("{hit}"): it needs a reviewed plan.'
    for c in clauses:
        _, at = leading_verb(c.words)
        lead = c.words[at] if at < len(c.words) else ""
        if lead in _DESTRUCTIVE_LEADS:
            return f'says "{lead}": destructive changes need a reviewed plan.'
        if lead in _RUN_VERBS:
            return f"asks to {lead} a command: shell commands need a reviewed plan."
    shell = next((w for w in words if w in _SHELL_WORDS), None)
    if shell is not None or "`" in text or "$(" in text:
        what = f'"{shell}"' if shell is not None else "a shell command"
        return f"runs {what}: shell commands need a reviewed plan."
    return None
