"""Two sample hospitals for the demo and the tests: one connects over HL7, one over FHIR.

Each folder holds a ``hospital.toml`` and its ``codes.csv``. The catalogue codes the tables map to are
the constants in ``catalogue``: when the engine's catalogue settles on its final codes, change them
there and in the two CSV files (a test checks that the CSVs use only these constants).
"""

from pathlib import Path

SAMPLES_DIR = Path(__file__).parent
HL7_HOSPITAL_CONFIG = SAMPLES_DIR / "hl7_city_hospital" / "hospital.toml"
FHIR_HOSPITAL_CONFIG = SAMPLES_DIR / "fhir_community_centre" / "hospital.toml"
