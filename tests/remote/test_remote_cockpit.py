"""The cockpit with a repo on another host: its tab live over ssh, the host going away, attach over ssh."""

from __future__ import annotations

import asyncio
import json
import shlex
import subprocess
import uuid
from pathlib import Path
from typing import Any

from textual.widgets import Static

from cockpit.tui.app import AppConfig
from cockpit.tui.repo_model import LIVE, OFFLINE
from cockpit_testkit.daemons import cli, cli_json, kill_daemon
from cockpit_testkit.hostedrepos import spanning_workspace
from cockpit_testkit.sshhosts import LabHost, SshLab
from cockpit_testkit.workspaces import script_agent
from tests.tui.conftest import AttachRecorder, Cockpit, run_cockpit

LARGE = "rewrite the routing and migrate the state store to the new export API client"
ASK_SCRIPT = """\
[[step]]
ask = "deploy to staging? (y/n)"
[[step]]
write = { path = "deploy.txt", content = "staging\\n" }
[[step]]
commit = "deploy to staging"
"""


def create_there(box: LabHost, root: Path, text: str, script: str | None = None) -> dict[str, Any]:
    """A task created by a person on the host (over ssh), as they would there."""
    argv = ["cockpit", "task", "create", text, "--force", "--repo", str(root), "--json"]
    if script is not None:
        file = root.parent / f"script-{uuid.uuid4().hex[:6]}.toml"
        file.write_text(script)
        argv += ["--script", str(file)]
    result = box.ssh.run(argv)
    assert result.returncode == 0, result.stdout + result.stderr
    task: dict[str, Any] = json.loads(result.stdout)
    return task


def banner(ck: Cockpit, repo: str) -> str:
    return str(ck.app.main.pane(repo).query_one(".link-banner", Static).render())


def tab_label(ck: Cockpit, repo: str) -> str:
    return ck.app.main._label(repo).plain


async def test_a_hosted_repo_is_a_tab_like_the_others_and_its_host_going_away_is_shown(
        short_tmp: Path, ssh_lab: SshLab, tmux_socket: str) -> None:
    span = spanning_workspace(short_tmp, ssh_lab, local=["web"], hosted={"api": "build-box"},
                              settings=script_agent(tmux_socket))
    web, api, box = span.local["web"], span.remote_root("api"), span.hosts["build-box"]
    cli_json("daemon", "start", repo=web)
    try:
        async with run_cockpit(short_tmp, AppConfig.for_tests(backoff=(0.1, 0.5))) as ck:
            await ck.wait(lambda: "api on build-box" in banner(ck, "api"), message="api live over ssh")
            assert ck.app.models["api"].mode == LIVE
            assert "api@build-box" in tab_label(ck, "api") and "@" not in tab_label(ck, "web")
            # A task made on the host shows up here, pushed through the forward.
            made = await asyncio.to_thread(create_there, box, api, "add a health endpoint to the API")
            await ck.wait(lambda: ck.task("api", made["id"]) is not None, message="the remote task shows")

            await asyncio.to_thread(box.down)
            await ck.wait(lambda: "⊘ build-box unreachable · retrying" in banner(ck, "api"), timeout=60,
                          message="the tab says the host is unreachable")
            assert ck.app.models["api"].mode == OFFLINE and "⊘" in tab_label(ck, "api")
            assert ck.task("api", made["id"]) is not None  # what was known stays shown
            # The rest keeps working: a task in web shows up while build-box is away.
            local = await asyncio.to_thread(cli_json, "task", "create", "fix the web footer", repo=web)
            await ck.wait(lambda: ck.task("web", local["id"]) is not None, message="web still live")
            assert ck.app.models["web"].mode == LIVE

            await asyncio.to_thread(box.up)
            # The host is back without its daemon (it went down with it): D on its tab starts it there.
            await ck.wait(lambda: "daemon on build-box is down" in banner(ck, "api"), timeout=60,
                          message="the tab says the daemon is down")
            ck.app.main.show_repo("api")
            await ck.press("D")
            await ck.wait(lambda: "api on build-box" in banner(ck, "api"), timeout=60, message="api back")
            later = await asyncio.to_thread(create_there, box, api, "document the health endpoint")
            await ck.wait(lambda: ck.task("api", later["id"]) is not None, message="live again")
    finally:
        kill_daemon(web)


async def test_a_trusted_host_takes_the_cockpit_as_the_person(
        short_tmp: Path, ssh_lab: SshLab, tmux_socket: str) -> None:
    span = spanning_workspace(short_tmp, ssh_lab, local=["web"], hosted={"api": "build-box"},
                              settings=script_agent(tmux_socket))
    api, box = span.remote_root("api"), span.hosts["build-box"]
    trusted = await asyncio.to_thread(cli, "workspace", "add", "api", "--host", "build-box", "--path",
                                      str(api), "--trust", cwd=short_tmp)
    assert trusted.code == 0, trusted.stdout + trusted.stderr
    assert "accepts you as the person" in trusted.stdout, trusted.stdout
    async with run_cockpit(short_tmp, AppConfig.for_tests()) as ck:
        await ck.wait(lambda: "as you" in banner(ck, "api"), timeout=60, message="api live, as the person")
        made = await asyncio.to_thread(create_there, box, api, LARGE)
        assert made["state"] == "pending" and made["scope"] != "small", made
        await ck.wait(lambda: ck.task("api", made["id"]) is not None, message="the remote task shows")
        ck.app.main.show_repo("api")
        await ck.select("api", made["id"])
        await ck.press("a")
        await ck.wait(lambda: (t := ck.task("api", made["id"])) is not None and t.approved_by == "person",
                      timeout=60, message="approved there by the person, from here")


async def test_attach_runs_ssh_t_to_the_remote_pane(
        short_tmp: Path, ssh_lab: SshLab, tmux_socket: str) -> None:
    span = spanning_workspace(short_tmp, ssh_lab, local=["web"], hosted={"api": "build-box"},
                              settings=script_agent(tmux_socket))
    api, box = span.remote_root("api"), span.hosts["build-box"]
    attach = AttachRecorder()
    viewer = f"ck-view-{uuid.uuid4().hex[:6]}"
    try:
        async with run_cockpit(short_tmp, AppConfig.for_tests(attach=attach)) as ck:
            await ck.wait(lambda: ck.app.models["api"].mode == LIVE, message="api live over ssh")
            title = "Add a staging deploy note to docs/deploy.md"  # small: approvable without --anyway
            made = await asyncio.to_thread(create_there, box, api, title, ASK_SCRIPT)
            ck.app.main.show_repo("api")
            await ck.select("api", made["id"])
            # Through the forward the cockpit is a peer there (the header says so): it cannot approve for the
            # person...
            assert "as a peer" in banner(ck, "api"), banner(ck, "api")
            ck.expect_error("needs a person")
            await ck.press("a")
            await ck.wait(lambda: "needs a person" in ck.app.flash.text, message="approval refused")
            # ...and is told where it can be done: on the host, or here once the host is trusted.
            assert f"ssh build-box cockpit task approve {made['id']}" in ck.app.flash.text, ck.app.flash.text
            assert "--trust" in ck.app.flash.text
            # ...who approves on the host itself.
            approved = await asyncio.to_thread(box.ssh.run, ["cockpit", "task", "approve", str(made["id"]),
                                                             "--repo", str(api), "--json"])
            assert approved.returncode == 0, approved.stdout + approved.stderr
            await ck.wait(lambda: (t := ck.task("api", made["id"])) is not None and t.needs_input, timeout=90,
                          message="the remote agent asks")
            await ck.press("t")
            await ck.wait(lambda: attach.argvs)
            argv = attach.argvs[0]
            assert argv[0] == "ssh" and "-t" in argv and "build-box" in argv, argv
            remote = shlex.split(argv[-1])
            assert remote[:3] == ["tmux", "-L", tmux_socket] and "attach-session" in remote, remote

            # Run it in a terminal (a tmux of our own): the remote pane's question is on screen.
            await asyncio.to_thread(subprocess.run, ["tmux", "-L", viewer, "new-session", "-d", "-x", "120",
                                                     "-y", "30", shlex.join(argv)], check=True, timeout=30)

            def on_screen() -> bool:
                shown = subprocess.run(["tmux", "-L", viewer, "capture-pane", "-p"], capture_output=True,
                                       text=True, timeout=30, check=False)
                return "deploy to staging" in shown.stdout

            await ck.wait(on_screen, timeout=30, message="the attached pane shows the agent's question")
            await asyncio.to_thread(box.ssh.run, ["cockpit", "task", "send", str(made["id"]), "y",
                                                  "--repo", str(api)])
    finally:
        await asyncio.to_thread(subprocess.run, ["tmux", "-L", viewer, "kill-server"], capture_output=True,
                                timeout=30, check=False)
