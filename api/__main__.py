"""`python -m api ...` is the `lindung` command (the service runs rescore jobs this way)."""

from api.cli import main

main()
