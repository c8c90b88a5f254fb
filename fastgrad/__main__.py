"""``python -m fastgrad`` is the ``fastgrad`` command."""
import sys

from .cli import main

sys.exit(main())
