"""`python -m cli`: the `vcstream` command, for a checkout where the script is not on PATH
(the tests run it so, from the source tree)."""

from cli import app

app(prog_name="vcstream")
