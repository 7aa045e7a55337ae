"""The WSGI entry point (`gunicorn app:app`, `flask --app app ...`): the application, configured by the environment."""

import gc
import logging
import os

from directory import create_app, serving
from directory.geo import postcodes

# LOG_LEVEL=INFO (as `make run` sets it) shows what a start does and how long each step took: the place table, the
# index and the sample on a first start.
if os.environ.get("LOG_LEVEL"):
    logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("directory").setLevel(os.environ["LOG_LEVEL"].upper())

app = create_app()

# A serving process holds some 300,000 long-lived objects once its postcode tables are in memory (the `zipcodes`
# package keeps every ZIP as a dict of lists). Each collection of Python's oldest generation scanned them all, 45-146
# ms, stalling whichever request set it off: the slowest of 1,620 searches at 100k listings took 153 ms, against 10.9
# ms with the tables loaded here and frozen out of the collector's scans. Garbage made later is collected as before;
# what start-up left is collected first, since frozen cycles are never freed. Commands (an import, a cron tick) skip
# the second of loading.
if serving():
    postcodes.load()
    gc.collect()
    gc.freeze()
