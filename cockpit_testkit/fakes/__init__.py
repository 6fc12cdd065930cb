"""Small fake executables the tests run as real subprocesses."""
