"""Root tests: their shared helpers (uv_command.py) are importable from here."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
