"""Benchmark of the her2-cds service as an EHR loads it, against a real sekmet-fhir (issue 7).

Run `python bench/run.py` (see bench/README.md). Nothing here is imported by the service or the tests.
"""
