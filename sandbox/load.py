#!/usr/bin/env python3
"""Load the demo patients into any FHIR R4 server: `python sandbox/load.py --fhir http://host/fhir`.

Same as `her2-cds load-sandbox`; runs from a checkout without installing (needs `requests`).
"""
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cds_service.cli import main  # noqa: E402

if __name__ == "__main__":
    sys.exit(main(["load-sandbox", *sys.argv[1:]]))
