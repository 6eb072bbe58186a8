"""``python -m worker.scaler`` runs the scaler loop."""

import sys

from worker.scaler.loop import main

sys.exit(main())
