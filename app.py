"""The WSGI entry point (`gunicorn app:app`, `flask --app app ...`): the application, configured by the environment."""

import logging
import os

from directory import create_app

# LOG_LEVEL=INFO (as `make run` sets it) shows what a start does and how long each step took: the place table, the
# index and the sample on a first start.
if os.environ.get("LOG_LEVEL"):
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("directory").setLevel(os.environ["LOG_LEVEL"].upper())

app = create_app()
