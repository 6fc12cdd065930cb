import atexit
import os
import shutil
import tempfile

pytest_plugins = ["cockpit_testkit.gitrepos", "cockpit_testkit.tmuxserver", "cockpit_testkit.daemons",
                  "cockpit_testkit.sshhosts", "cockpit_testkit.markers"]

# One person token per test process, never the person's own: the CLI, the cockpit and the daemons the tests
# start (which inherit the environment) all read it from here.
if "COCKPIT_TOKEN_FILE" not in os.environ:
    _token_dir = tempfile.mkdtemp(prefix="cockpit-token-")
    os.environ["COCKPIT_TOKEN_FILE"] = os.path.join(_token_dir, "token")
    atexit.register(shutil.rmtree, _token_dir, True)
