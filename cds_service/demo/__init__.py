"""Demo and test tooling: relative-date test data, the sekmet-fhir launcher, the sandbox loader."""
