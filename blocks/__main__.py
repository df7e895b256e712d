"""`python -m engine.blocks [--check]`: regenerate (or check) the table in blocks/README.md."""

import sys

from engine.blocks.readme import main

sys.exit(main(sys.argv[1:]))
