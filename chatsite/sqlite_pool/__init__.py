"""Django's SQLite backend with the connections of a worker process reused (see ``base``)."""
