import sys

from asym.cli import main

sys.exit(main())
