from vcstream.cli import main

main()
