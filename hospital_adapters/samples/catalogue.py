"""The catalogue codes the sample code tables map to (national medical insurance code style).

Taken from the engine's sample catalogues (``policies/*/catalogue.toml``, where the same item has the
same code in every region). If those codes change, change them here and in the sample CSV files
together: a test checks that the CSVs, these constants and the catalogues agree, units included.
"""

CONSULTATION_FEE = "001102000010000-110200001"  # 普通门诊诊察费, per visit (次)
AMOXICILLIN_CAPSULE_250MG = "XJ01CAA040A001010100483"  # 阿莫西林胶囊 0.25g, per capsule (粒)
METFORMIN_TABLET_500MG = "XA10BAE023A001010104521"  # 盐酸二甲双胍片 0.5g, per tablet (片)
BLOOD_ROUTINE_TEST = "002501020350000-250102035"  # 血细胞分析(血常规), per test (次)
FASTING_GLUCOSE_TEST = "002503020010000-250302001"  # 葡萄糖测定, per test (项)

ALL_CODES = frozenset({
    CONSULTATION_FEE,
    AMOXICILLIN_CAPSULE_250MG,
    METFORMIN_TABLET_500MG,
    BLOOD_ROUTINE_TEST,
    FASTING_GLUCOSE_TEST,
})
