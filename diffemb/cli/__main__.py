import sys

from diffemb.cli.main import main

sys.exit(main())
