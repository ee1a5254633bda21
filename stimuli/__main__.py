from stimuli.cli import main

main()
