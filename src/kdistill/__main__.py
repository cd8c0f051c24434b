import sys

from kdistill.cli.main import main

sys.exit(main())
