pytest_plugins = ["tests.support.gitrepos", "tests.support.tmuxserver", "tests.support.daemons",
                  "tests.support.sshhosts"]
