from qfix.cli import main

main()
