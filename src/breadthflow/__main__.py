from breadthflow.cli.app import main

main()
