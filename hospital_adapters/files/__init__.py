"""Charge files for small clinics whose HIS can only export CSV or JSON.

Modules: ``chargefile`` (reading one file into a visit), ``inbox`` (processing a folder once per file,
results written atomically next to each file) and ``adapter`` (polling in the background).
"""
