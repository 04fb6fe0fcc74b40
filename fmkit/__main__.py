import sys

from fmkit.cli.main import main

sys.exit(main())
