"""The HTTP API (FastAPI): parses, calls services, renders. No business rule lives here."""
