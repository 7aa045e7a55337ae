"""The app's JSON provider against Flask's own: the same JSON for every value either writes, Flask's for the rest. And
JSON columns read on SQLite (by orjson where it can) as `json.loads` reads them."""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import uuid
from pathlib import Path

from flask import Flask
from flask.json.provider import DefaultJSONProvider
from flask.testing import FlaskClient
from markupsafe import Markup
from sqlalchemy import JSON, Column, Integer, MetaData, Table, insert, select, text

from directory.db import make_engine

from directory.web.json_provider import COMPACT


@dataclasses.dataclass
class Point:
    lat: float
    lon: float


VALUES = [
    {"b": 1, "a": [1.5, None, True, "Zoë </script> & 'x'"], "c": {"z": 2**63 - 1, "y": -2**63}},
    {"when": dt.date(2026, 12, 7), "at": dt.datetime(2026, 12, 7, 13, 5, 9), "id": uuid.UUID(int=7)},
    {"point": Point(40.7, -74.0), "html": Markup("<b>x</b>"), "tiny": 1e-7, "big": 1e300},
    {"huge": 2**70, "negative": -2**70},  # past orjson's 64 bits: Flask's provider writes it
    {2: "two", 1: "one"},  # orjson takes str keys only: Flask's provider writes these
]


def test_every_value_reads_back_as_flask_writes_it(shared_app: Flask) -> None:
    flask_json = DefaultJSONProvider(shared_app)
    for value in VALUES[:4]:
        ours = shared_app.json.dumps(value, separators=COMPACT)
        assert json.loads(ours) == json.loads(flask_json.dumps(value, separators=COMPACT)), value
        assert list(json.loads(ours)) == sorted(json.loads(ours)), "keys are sorted"
    assert "Zoë" in shared_app.json.dumps(VALUES[0], separators=COMPACT)  # UTF-8 (Flask's provider writes an escape)
    assert json.loads(shared_app.json.dumps(VALUES[1], separators=COMPACT))["when"] == "Mon, 07 Dec 2026 00:00:00 GMT"
    for value in VALUES:  # any other form (debug's indented answers, Jinja's `tojson`) is Flask's own
        for options in ({}, {"indent": 2}, {"sort_keys": True}):
            assert shared_app.json.dumps(value, **options) == flask_json.dumps(value, **options)
    assert shared_app.json.dumps(VALUES[3], separators=COMPACT) == flask_json.dumps(VALUES[3], separators=COMPACT)
    assert shared_app.json.dumps({"2": 1, "1": 2}, separators=COMPACT) == '{"1":2,"2":1}'
    assert shared_app.json.dumps(VALUES[4], separators=COMPACT) == '{"1":"one","2":"two"}'


def test_a_search_answer_reads_the_same(shared_app: Flask, shared_client: FlaskClient) -> None:
    response = shared_client.get("/api/v1/search?postcode=11201&q=anxiety&radius=25")
    assert response.status_code == 200 and response.mimetype == "application/json"
    answer = response.get_json()
    assert answer["results"] and response.data.endswith(b"\n")
    with shared_app.app_context():
        assert json.loads(DefaultJSONProvider(shared_app).dumps(answer)) == json.loads(response.data)


def test_json_columns_read_back_as_json_loads_reads_them(tmp_path: Path) -> None:
    # As stored: what SQLAlchemy's serializer (`json.dumps`) writes, including what orjson refuses (NaN, a lone
    # surrogate escape, an integer past 64 bits) and what it reads alike (escapes, nesting, floats, null).
    stored = ['["cbt", "emdr"]', '["caf\\u00e9", "\\ud800x"]', "[NaN, Infinity, 1.5e300]",
              "[18446744073709551616, -9223372036854775809, 123456789012345678, 0.1234567890123456789012]",
              '{"a": [1, 2.5, null, true], "b": "\\u2028"}', "[]", "null", '"plain"']
    table = Table("held", MetaData(), Column("id", Integer, primary_key=True), Column("value", JSON))
    engine = make_engine(f"sqlite:///{tmp_path / 'json.sqlite3'}")
    with engine.begin() as connection:
        table.create(connection)
        for n, raw in enumerate(stored):
            connection.execute(text("INSERT INTO held (id, value) VALUES (:n, :raw)"), {"n": n, "raw": raw})
        connection.execute(insert(table).values(id=len(stored), value=["written", "by", "SQLAlchemy", 3.25]))
        read = connection.execute(select(table.c.value).order_by(table.c.id)).scalars().all()
    engine.dispose()
    expected = [json.loads(raw) for raw in stored] + [["written", "by", "SQLAlchemy", 3.25]]
    assert len(read) == len(expected)
    for found, wanted in zip(read, expected, strict=True):
        assert json.dumps(found) == json.dumps(wanted)  # NaN compares unequal to itself; its JSON text does not
    assert math.isnan(read[2][0])
