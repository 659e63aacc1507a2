"""Demo and test tooling, kept out of the service packages: the sekmet-fhir launcher (creates a venv,
runs pip), the demo runner behind `her2-cds demo`, and the loader of the demo patients in this folder.

None of it is imported by `her2-cds serve` or the app; the CLI imports it only inside the `demo` and
`load-sandbox` commands, so the container image never needs it.
"""
