"""The four roles: thin process adapters over the plain domain modules.

``ORDER`` is the one list of role names: the supervisor starts them in this order and
stops them in reverse; ``SERVICES`` are the roles that answer requests on a service
socket (the api is their client).
"""

SERVICES = ("ingest", "predictor", "trainer")
ORDER = (*SERVICES, "api")
