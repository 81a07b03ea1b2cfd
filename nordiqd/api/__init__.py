"""The REST edge: a Falcon app built by ``create_app(deps)``, served by waitress."""
