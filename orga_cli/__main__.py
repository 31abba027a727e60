from orga_cli.cli import main

main()
