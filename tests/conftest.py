import sys
from pathlib import Path

# Make `tests.support`-style helpers importable as `support` from every test module.
sys.path.insert(0, str(Path(__file__).resolve().parent))
