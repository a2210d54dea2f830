from wsctl.cli import main

main()
