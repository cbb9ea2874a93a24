"""The client's tests run against a live ``candlekeep serve`` on a real database.

test/integration/python-client.test.ts stores the candles, starts the server and runs pytest with:
CANDLEKEEP_URL, CANDLEKEEP_API_KEY, CANDLEKEEP_TEST_SERIES (exchange:symbol:interval),
CANDLEKEEP_TEST_EXPECTED (a JSON file of the stored candles, as PostgreSQL returns them) and
CANDLEKEEP_TEST_EXPORT (a Parquet file ``candlekeep export`` wrote of the same series) and
CANDLEKEEP_TEST_READ_KEY (a key of scope read, stored with the server's database).
"""
import json
import os

import pytest

from candlekeep import Client


def _env(name):
    value = os.environ.get(name)
    if not value:
        pytest.fail(f"{name} is not set: run these tests through npm test (test/integration/python-client.test.ts)")
    return value


@pytest.fixture(scope="session")
def client():
    return Client(_env("CANDLEKEEP_URL"), _env("CANDLEKEEP_API_KEY"))


@pytest.fixture(scope="session")
def read_key():
    return _env("CANDLEKEEP_TEST_READ_KEY")


@pytest.fixture(scope="session")
def series():
    exchange, symbol, interval = _env("CANDLEKEEP_TEST_SERIES").split(":")
    return {"exchange": exchange, "symbol": symbol, "interval": interval}


@pytest.fixture(scope="session")
def expected():
    with open(_env("CANDLEKEEP_TEST_EXPECTED")) as f:
        return json.load(f)


@pytest.fixture(scope="session")
def export_path():
    return _env("CANDLEKEEP_TEST_EXPORT")
