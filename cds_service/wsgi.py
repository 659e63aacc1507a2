"""WSGI entry point: `gunicorn cds_service.wsgi:app` (configuration from HER2CDS_* variables)."""
from cds_service import create_app

app = create_app()
