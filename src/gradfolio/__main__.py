"""``python -m gradfolio`` runs the command-line tool."""

from gradfolio.cli import main

main()
