"""`python -m ui [serve flags]`: the same as `askpapers serve [flags]`."""
import sys

from ui.cli import main

sys.exit(main(["serve", *sys.argv[1:]]))
