"""``python -m worker`` runs one worker."""

import sys

from worker.main import main

sys.exit(main())
