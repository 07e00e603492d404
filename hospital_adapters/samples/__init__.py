"""Two sample hospitals for the demo and the tests: one connects over HL7, one over FHIR.

Each folder holds a ``hospital.toml``, its ``codes.csv`` and a message its HIS sends (a DFT^P03, a
Claim); ``charge_files`` holds two charge files in the HL7 hospital's codes, as a small clinic's HIS
would export them. The ids match the demo data (``demo/hospitals.toml``, ``demo/enrolment.csv``) and the
dates fall under the sample policies, so every sample settles against the real engine; the integration
guide quotes them. The catalogue codes the tables map to are the constants in ``catalogue``: when the
engine's catalogue settles on its final codes, change them there and in the two CSV files (a test checks
that the CSVs use only these constants).
"""

from pathlib import Path

SAMPLES_DIR = Path(__file__).parent
HL7_HOSPITAL_CONFIG = SAMPLES_DIR / "hl7_city_hospital" / "hospital.toml"
FHIR_HOSPITAL_CONFIG = SAMPLES_DIR / "fhir_community_centre" / "hospital.toml"
HL7_SAMPLE_MESSAGE = SAMPLES_DIR / "hl7_city_hospital" / "dft_p03.hl7"  # one segment per line (LF)
FHIR_SAMPLE_CLAIM = SAMPLES_DIR / "fhir_community_centre" / "claim.json"
CHARGE_FILES_DIR = SAMPLES_DIR / "charge_files"
