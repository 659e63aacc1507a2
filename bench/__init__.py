"""Benchmark of the her2-cds service as an EHR loads it, against a real sekmet-fhir (issue 7).

Run `python bench/run.py` (see bench/README.md). Nothing here is imported by the service; the mapping
property tests use `bench.synthetic.large_record` as their large realistic chart.
"""
