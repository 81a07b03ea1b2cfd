"""The four roles: thin process adapters over the plain domain modules."""

ORDER = ("ingest", "predictor", "trainer", "api")
