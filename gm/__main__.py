import sys

from gm.cli import main

sys.exit(main())
