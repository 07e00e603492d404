import sys
from pathlib import Path

# Test helpers live beside the tests (tests are not a package); the seeded world is shared with tests/service.
sys.path.insert(0, str(Path(__file__).parent))
sys.path.insert(0, str(Path(__file__).parents[1] / "service"))
