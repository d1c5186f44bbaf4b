"""Where the vectorize project and its test data are; importing this puts the project on sys.path.

A module of its own (not conftest) so that the tests can import it by a name no other test folder uses.
"""

import sys
from pathlib import Path

VECTORIZE = Path(__file__).resolve().parents[1]
DATA = Path(__file__).resolve().parent / "data"
if str(VECTORIZE) not in sys.path:
    sys.path.insert(0, str(VECTORIZE))
