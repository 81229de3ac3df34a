from dropgz.cli import main

main()
