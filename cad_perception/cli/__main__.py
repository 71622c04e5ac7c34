"""`python -m cad_perception.cli`."""

import sys

from cad_perception.cli import main

sys.exit(main())
