"""The learn tests import solutions.py (the library's implementations as a student's files)."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))  # importlib mode: make solutions importable
