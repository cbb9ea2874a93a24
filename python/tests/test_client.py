import uuid
from decimal import Decimal

import pandas as pd
import pytest

from candlekeep import CandlekeepError, Client, ExportFailed, read_export

COLUMNS = ["open", "high", "low", "close", "volume", "quote_volume"]


def frame_range(expected):
    return expected["rows"][0][0], expected["rows"][-1][0] + 60_000


def test_candles_follow_every_cursor_into_one_frame(client, series, expected):
    start, end = frame_range(expected)
    df = client.candles(series["exchange"], series["symbol"], series["interval"], start, end)
    rows = expected["rows"]
    assert len(rows) > 2 * 10_000, "the series must span several pages"
    assert len(df) == len(rows)
    assert isinstance(df.index, pd.DatetimeIndex)
    assert str(df.index.tz) == "UTC"
    assert df.index.name == "open_time"
    assert [t.value // 10**6 for t in df.index] == [r[0] for r in rows]
    for k, col in enumerate(COLUMNS):
        assert df[col].dtype == "float64"
        want = [float("nan") if r[1 + k] is None else float(r[1 + k]) for r in rows]
        got = df[col].tolist()
        assert all((g != g and w != w) or g == w for g, w in zip(got, want)), col
    assert str(df["trades"].dtype) == "Int64"
    assert [None if pd.isna(v) else int(v) for v in df["trades"]] == [r[7] for r in rows]
    assert df["closed"].tolist() == [r[8] for r in rows]
    assert not df["gap"].any()


def test_exact_decimals_on_request(client, series, expected):
    start, end = frame_range(expected)
    df = client.candles(series["exchange"], series["symbol"], series["interval"], start, end, exact=True)
    for k, col in enumerate(COLUMNS):
        got = df[col].tolist()
        want = [r[1 + k] for r in expected["rows"]]
        # Decimal keeps the stored text, trailing zeros included.
        assert [None if v is None else str(v) for v in got] == want
        assert all(v is None or isinstance(v, Decimal) for v in got)


def test_bare_read_csv_gets_only_the_first_page(client, series, expected):
    start, end = frame_range(expected)
    url = (f"{client.url}/v1/candles?exchange={series['exchange']}&symbol={series['symbol']}"
           f"&interval={series['interval']}&start={start}&end={end}&format=csv")
    df = pd.read_csv(url, storage_options={"x-api-key": client.key})
    assert len(df) == 1000  # the default page; the next cursor is in a header read_csv never sees
    assert len(df) < len(expected["rows"])


def test_resampled_interval_says_so(client, series, expected):
    start, end = frame_range(expected)
    df = client.candles(series["exchange"], series["symbol"], "1h", start, end)
    assert df.attrs["resampled_from"] == "1m"
    first_end = df.index[0].value // 10**6 + 3_600_000
    first_hour = [r for r in expected["rows"] if r[0] < first_end]
    assert df["high"].iloc[0] == max(float(r[2]) for r in first_hour)
    assert df["source_candles"].iloc[0] == len(first_hour)


def test_errors_carry_the_problem(client, series):
    with pytest.raises(CandlekeepError) as err:
        client.candles(series["exchange"], "NOPE/USDT", "1m")
    assert err.value.status == 404
    assert "NOPE/USDT" in err.value.problem["detail"]
    with pytest.raises(CandlekeepError) as bad:
        client.candles(series["exchange"], series["symbol"], "1m", start=1704067200)
    assert bad.value.status == 400
    assert bad.value.problem["parameter"] == "start"
    with pytest.raises(CandlekeepError) as unauthorised:
        Client(client.url, "not-the-key").candles(series["exchange"], series["symbol"], "1m")
    assert unauthorised.value.status == 401


def test_a_read_key_reads_and_is_told_which_scope_a_write_needs(client, series, read_key):
    reader = Client(client.url, read_key)
    assert len(reader.candles(series["exchange"], series["symbol"], "1m")) > 0
    with pytest.raises(CandlekeepError) as refused:
        reader.record_run({"strategy": "s"})
    assert refused.value.status == 403
    assert refused.value.problem["requiredScope"] == "write"
    assert "needs a key with scope write" in refused.value.problem["detail"]


def test_read_export_matches_the_api(client, series, expected, export_path):
    start, end = frame_range(expected)
    api = client.candles(series["exchange"], series["symbol"], series["interval"], start, end, exact=True)
    df = read_export(export_path, exact=True)
    assert str(df.index.tz) == "UTC"
    assert (df["symbol"] == series["symbol"]).all()
    assert list(df.index) == list(api.index)
    for col in COLUMNS:
        assert [None if pd.isna(v) else Decimal(v) for v in df[col]] == [None if v is None else Decimal(v) for v in api[col]]
    floats = read_export(export_path)
    assert floats["close"].dtype == "float64"
    # The optional fields' columns are there too, float64 like the others (NaN: this series has none).
    assert floats["taker_buy_volume"].dtype == "float64"
    assert floats["vwap"].isna().all()


def test_export_waits_for_the_file_and_reads_it(client, series, expected, tmp_path):
    start, end = frame_range(expected)
    ref = f"{series['exchange']}:{series['symbol']}:{series['interval']}"
    kept = str(tmp_path / "kept.parquet")
    df = client.export([ref], start=start, end=end, exact=True, path=kept, poll_interval=0.2)
    rows = expected["rows"]
    assert df.attrs["export"]["status"] == "done"
    assert df.attrs["export"]["progress"]["rows"] == len(rows)
    assert str(df.index.tz) == "UTC"
    assert [t.value // 10**6 for t in df.index] == [r[0] for r in rows]
    assert (df["symbol"] == series["symbol"]).all()
    for k, col in enumerate(COLUMNS):
        assert [None if pd.isna(v) else Decimal(v) for v in df[col]] == [None if r[1 + k] is None else Decimal(r[1 + k]) for r in rows], col
    assert [None if pd.isna(v) else int(v) for v in df["trades"]] == [r[7] for r in rows]
    assert read_export(kept).shape[0] == len(rows)

    # A market selection resampled to 1h, as floats, from a temporary file.
    hourly = client.export(exchange=series["exchange"], symbols=[series["symbol"]], interval="1h", start=start, end=end,
                           poll_interval=0.2)
    api = client.candles(series["exchange"], series["symbol"], "1h", start, end)
    assert list(hourly.index) == list(api.index)
    assert hourly["high"].tolist() == api["high"].tolist()

    with pytest.raises(CandlekeepError) as unknown:
        client.export(["binance:NOPE/USDT:1m"])
    assert unknown.value.status == 404
    assert unknown.value.problem["parameter"] == "series[0]"


def run_body(strategy, fast, sharpe, series):
    return {
        "strategy": strategy,
        "strategyVersion": "1.0.0",
        "parameters": {"fast": fast, "slow": 30, "risk": {"stop": 0.02}},
        "instruments": [{"exchange": series["exchange"], "symbol": series["symbol"], "interval": "1h"}],
        "start": "2024-03-01",
        "end": "2024-03-10",
        "metrics": {"totalReturn": 0.04, "sharpe": sharpe, "maxDrawdown": 0.06, "tradeCount": 12},
        "tags": ["pytest"],
    }


def test_backtests_record_list_and_compare(client, series):
    strategy = f"py_{uuid.uuid4().hex[:10]}"
    key = str(uuid.uuid4())
    first = client.record_run(run_body(strategy, 10, 1.5, series), idempotency_key=key)
    again = client.record_run(run_body(strategy, 10, 1.5, series), idempotency_key=key)
    assert again["id"] == first["id"]
    ids = [first["id"]] + [client.record_run(run_body(strategy, f, s, series))["id"] for f, s in [(5, 0.5), (20, 2.5), (8, 1.1), (12, 3.0)]]

    # limit=2 is the page size the API uses: five runs take three pages, and runs() follows them all.
    df = client.runs({"strategy": strategy, "limit": 2})
    assert sorted(df["id"]) == sorted(ids)
    assert str(df["created_at"].dt.tz) == "UTC"
    assert set(df["param.fast"]) == {10, 5, 20, 8, 12}
    assert df["param.risk.stop"].eq(0.02).all()

    good = client.runs({"strategy": strategy, "metric.sharpe.gte": 1.2}, sort="-metric.sharpe")
    assert good["metric.sharpe"].tolist() == [3.0, 2.5, 1.5]

    cmp = client.compare(ids[:2])
    assert {r["id"] for r in cmp["runs"]} == set(ids[:2])
    assert client.run(ids[0])["strategy"] == strategy


def test_candles_as_of_a_moment_before_anything_was_stored_are_empty(client, series, expected):
    start, end = frame_range(expected)
    now = client.candles(series["exchange"], series["symbol"], series["interval"], start, start + 60 * 60_000,
                         as_of=pd.Timestamp.now(tz="UTC"))
    assert len(now) == len(client.candles(series["exchange"], series["symbol"], series["interval"], start, start + 60 * 60_000))
    assert len(now) > 0
    before = client.candles(series["exchange"], series["symbol"], series["interval"], start, end, as_of="2001-01-01T00:00:00Z")
    assert len(before) == 0
