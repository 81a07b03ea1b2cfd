"""Training jobs: their history, readiness, and the subprocess that runs one."""
