from extalerts.cli import main

main()
