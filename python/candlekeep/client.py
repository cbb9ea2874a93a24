"""The candlekeep HTTP API as pandas DataFrames.

Every list the API pages (candles, backtest runs) is followed to its last page here: a page holds
at most 10,000 candles and the next cursor travels in the answer, so reading a URL once (as
``pandas.read_csv(url)`` does) only ever gets the first page.
"""
from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from datetime import date, datetime, timezone
from decimal import Decimal
from typing import Any, Dict, Iterable, Iterator, List, Mapping, Optional, Sequence, Union

import pandas as pd

TimeLike = Union[str, int, datetime, date, pd.Timestamp, None]

PRICE_COLUMNS = ["open", "high", "low", "close", "volume", "quote_volume"]
# The optional fields some exchanges send (Binance's taker-buy volumes, Kraken's VWAP), in exported files.
EXTRA_COLUMNS = ["taker_buy_volume", "taker_buy_quote_volume", "vwap"]
_JSON_NAMES = {"open": "open", "high": "high", "low": "low", "close": "close", "volume": "volume", "quote_volume": "quoteVolume"}
CANDLE_PAGE = 10_000


class ExportFailed(Exception):
    """An export that ended ``failed`` (or ``expired``): ``status`` is the export's status resource, ``error`` its reason."""

    def __init__(self, status: Mapping[str, Any]):
        self.status = dict(status)
        self.error = status.get("error")
        super().__init__(f"export {status.get('id')} {status.get('status')}: {self.error or 'its file is gone'}")


class CandlekeepError(Exception):
    """An error answer from the API, with its problem details (``problem``: title, detail, parameter)."""

    def __init__(self, status: int, problem: Mapping[str, Any]):
        self.status = status
        self.problem = dict(problem)
        super().__init__(f"{status} {problem.get('title', '')}: {problem.get('detail', '')}".strip())


def _time(t: TimeLike) -> Optional[str]:
    """ISO 8601 in UTC (naive datetimes are taken as UTC) or epoch milliseconds, as the API takes them."""
    if t is None:
        return None
    if isinstance(t, bool):
        raise TypeError("a time cannot be a bool")
    if isinstance(t, int):
        return str(t)
    if isinstance(t, pd.Timestamp):
        t = t.to_pydatetime()
    if isinstance(t, datetime):
        if t.tzinfo is None:
            t = t.replace(tzinfo=timezone.utc)
        # The API takes whole milliseconds: a datetime's microseconds (datetime.now()) are cut to them.
        return t.astimezone(timezone.utc).isoformat(timespec="milliseconds" if t.microsecond else "seconds").replace("+00:00", "Z")
    if isinstance(t, date):
        return t.isoformat()
    return str(t)


class Client:
    """A client of one candlekeep API.

    ``url`` defaults to ``CANDLEKEEP_URL`` and ``key`` to ``CANDLEKEEP_API_KEY``; the key is sent in
    the ``x-api-key`` header, the only place API Gateway reads it.
    """

    def __init__(self, url: Optional[str] = None, key: Optional[str] = None, timeout: float = 60.0):
        base = url or os.environ.get("CANDLEKEEP_URL")
        if not base:
            raise ValueError("give the API's base URL, or set CANDLEKEEP_URL")
        self.url = base.rstrip("/")
        self.key = key if key is not None else os.environ.get("CANDLEKEEP_API_KEY")
        self.timeout = timeout

    # ---- HTTP ----

    def _request(self, method: str, path: str, query: Optional[Sequence[tuple]] = None, body: Any = None,
                 headers: Optional[Mapping[str, str]] = None) -> tuple:
        url = self.url + path
        if query:
            url += "?" + urllib.parse.urlencode([(k, v) for k, v in query if v is not None])
        h = {"Accept": "application/json", **(headers or {})}
        if self.key:
            h["x-api-key"] = self.key
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            h["Content-Type"] = "application/json"
        req = urllib.request.Request(url, data=data, method=method, headers=h)
        try:
            with urllib.request.urlopen(req, timeout=self.timeout) as res:
                return res.status, json.loads(res.read() or b"null")
        except urllib.error.HTTPError as err:
            raw = err.read()
            try:
                problem = json.loads(raw)
            except ValueError:
                problem = {"title": err.reason, "detail": raw.decode(errors="replace")[:500]}
            raise CandlekeepError(err.code, problem) from None

    def _get(self, path: str, query: Optional[Sequence[tuple]] = None) -> Any:
        return self._request("GET", path, query)[1]

    # ---- candles ----

    def candle_pages(self, exchange: str, symbol: str, interval: str, start: TimeLike = None, end: TimeLike = None,
                     gaps: str = "omit", page_size: int = CANDLE_PAGE, as_of: TimeLike = None) -> Iterator[dict]:
        """Every page of GET /v1/candles for the query, following ``nextCursor`` to the last one."""
        query = [("exchange", exchange), ("symbol", symbol), ("interval", interval), ("start", _time(start)),
                 ("end", _time(end)), ("gaps", gaps), ("limit", str(page_size)), ("asOf", _time(as_of))]
        cursor = None
        while True:
            page = self._get("/v1/candles", query + ([("cursor", cursor)] if cursor else []))
            yield page
            cursor = page.get("nextCursor")
            if not cursor:
                return

    def candles(self, exchange: str, symbol: str, interval: str, start: TimeLike = None, end: TimeLike = None, *,
                gaps: str = "omit", exact: bool = False, page_size: int = CANDLE_PAGE,
                as_of: TimeLike = None) -> pd.DataFrame:
        """Candles with open time in [start, end) as a DataFrame, every page of them.

        With ``as_of``, the candles as they were stored at that moment (restated candles with their
        values then, candles stored since left out): the data a past run saw.

        The index is the open time (``DatetimeIndex``, UTC, named ``open_time``). Prices and volumes
        are float64, or with ``exact=True`` the exact ``decimal.Decimal`` values the exchange sent
        (object columns). ``trades`` is a nullable Int64; ``closed`` and ``gap`` are bool;
        ``source_candles`` is there when the interval was resampled (``df.attrs["resampled_from"]``).
        """
        times: List[int] = []
        cols: Dict[str, list] = {c: [] for c in PRICE_COLUMNS + ["trades", "closed", "gap", "source_candles"]}
        resampled_from = None
        for page in self.candle_pages(exchange, symbol, interval, start, end, gaps, page_size, as_of):
            resampled_from = page.get("resampledFrom")
            for c in page["candles"]:
                times.append(c["openTime"])
                for col in PRICE_COLUMNS:
                    cols[col].append(c.get(_JSON_NAMES[col]))
                cols["trades"].append(c.get("trades"))
                cols["closed"].append(bool(c["closed"]))
                cols["gap"].append(bool(c.get("gap", False)))
                cols["source_candles"].append(c.get("sourceCandles"))
        index = pd.DatetimeIndex(pd.to_datetime(times, unit="ms", utc=True), name="open_time")
        data: Dict[str, Any] = {}
        for col in PRICE_COLUMNS:
            if exact:
                data[col] = pd.Series([None if v is None else Decimal(v) for v in cols[col]], index=index, dtype=object)
            else:
                data[col] = pd.Series(pd.to_numeric(pd.Series(cols[col], dtype=object), errors="raise").to_numpy(dtype="float64"), index=index)
        data["trades"] = pd.Series(cols["trades"], index=index, dtype="Int64")
        data["closed"] = pd.Series(cols["closed"], index=index, dtype=bool)
        data["gap"] = pd.Series(cols["gap"], index=index, dtype=bool)
        if resampled_from:
            data["source_candles"] = pd.Series(cols["source_candles"], index=index, dtype="Int64")
        df = pd.DataFrame(data, index=index)
        df.attrs["resampled_from"] = resampled_from
        return df

    # ---- exports ----

    def start_export(self, series: Optional[Sequence[str]] = None, *, exchange: Optional[str] = None,
                     symbols: Optional[Sequence[str]] = None, interval: Optional[str] = None, start: TimeLike = None,
                     end: TimeLike = None, gaps: str = "omit", format: str = "parquet", as_of: TimeLike = None) -> dict:
        """Asks the API for an export (POST /v1/exports) and returns its status resource at once.

        Give ``series`` (``"exchange:BASE/QUOTE:interval"`` strings), or a market selection: ``interval``
        with an optional ``exchange`` and ``symbols``. ``format`` is ``parquet`` or ``csv.gz``; ``as_of``
        exports the candles as they were stored at that moment.
        """
        body: Dict[str, Any] = {"gaps": gaps, "format": format}
        if series is not None:
            body["series"] = list(series)
        if interval is not None or exchange is not None or symbols is not None:
            markets: Dict[str, Any] = {"interval": interval}
            if exchange is not None:
                markets["exchange"] = exchange
            if symbols is not None:
                markets["symbols"] = list(symbols)
            body["markets"] = markets
        for name, value in (("start", _time(start)), ("end", _time(end)), ("asOf", _time(as_of))):
            if value is not None:
                body[name] = value
        return self._request("POST", "/v1/exports", body=body)[1]

    def export_status(self, export_id: str) -> dict:
        """An export's status and progress; when done, ``download.url`` (presigned, no key needed)."""
        return self._get(f"/v1/exports/{urllib.parse.quote(export_id)}")

    def wait_export(self, export_id: str, *, timeout: float = 3600.0, poll_interval: float = 1.0) -> dict:
        """Polls the export until it is done (returns its status) or failed/expired (raises ExportFailed)."""
        deadline = time.monotonic() + timeout
        while True:
            status = self.export_status(export_id)
            if status["status"] == "done":
                return status
            if status["status"] in ("failed", "expired"):
                raise ExportFailed(status)
            if time.monotonic() + poll_interval > deadline:
                raise TimeoutError(f"export {export_id} still {status['status']} after {timeout} s "
                                   f"({status['progress']['rows']} rows written)")
            time.sleep(poll_interval)

    def export(self, series: Optional[Sequence[str]] = None, *, exchange: Optional[str] = None,
               symbols: Optional[Sequence[str]] = None, interval: Optional[str] = None, start: TimeLike = None,
               end: TimeLike = None, gaps: str = "omit", exact: bool = False, path: Optional[str] = None,
               timeout: float = 3600.0, poll_interval: float = 1.0, as_of: TimeLike = None) -> pd.DataFrame:
        """Exports through the API as Parquet, waits for the file, downloads it and reads it.

        The frame is shaped like ``read_export`` (indexed by open time, UTC, with exchange, symbol and
        interval columns); ``df.attrs["export"]`` is the export's final status. The file is kept at
        ``path`` when given, otherwise read from a temporary file that is removed.
        """
        status = self.start_export(series, exchange=exchange, symbols=symbols, interval=interval, start=start,
                                   end=end, gaps=gaps, format="parquet", as_of=as_of)
        done = self.wait_export(status["id"], timeout=timeout, poll_interval=poll_interval)
        if path is not None:
            self._download(done["download"]["url"], path)
            df = read_export(path, exact=exact)
        else:
            with tempfile.TemporaryDirectory(prefix="candlekeep-export-") as tmp:
                target = os.path.join(tmp, done["download"]["fileName"])
                self._download(done["download"]["url"], target)
                df = read_export(target, exact=exact)
        df.attrs["export"] = done
        return df

    def _download(self, url: str, path: str) -> None:
        """The presigned URL carries its own authorisation: no API key is sent to the bucket."""
        partial = path + ".partial"
        try:
            with urllib.request.urlopen(url, timeout=self.timeout) as res, open(partial, "wb") as f:
                shutil.copyfileobj(res, f, 1 << 20)
            os.replace(partial, path)
        finally:
            if os.path.exists(partial):
                os.remove(partial)

    # ---- backtests ----

    def record_run(self, run: Mapping[str, Any], idempotency_key: Optional[str] = None) -> dict:
        """Stores a backtest run (POST /v1/backtests) and returns it as stored. With the same
        ``idempotency_key``, a retry returns the run the first attempt stored instead of a duplicate."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self._request("POST", "/v1/backtests", body=dict(run), headers=headers)[1]

    def run(self, run_id: str) -> dict:
        """One stored run (GET /v1/backtests/{id})."""
        return self._get(f"/v1/backtests/{urllib.parse.quote(run_id)}")

    def runs(self, filters: Optional[Mapping[str, Any]] = None, *, sort: Optional[str] = None,
             limit: Optional[int] = None) -> pd.DataFrame:
        """Stored runs matching ``filters``, every page of them, one row per run.

        ``filters`` are the API's query filters, e.g. ``{"strategy": "sma_cross", "tag": "research",
        "metric.sharpe.gte": 1, "param.fast": 10}``; lists are joined with commas. The frame has
        ``id``, ``created_at`` (UTC), ``strategy``, ``strategy_version``, ``tags``, then one
        ``metric.<name>`` and one ``param.<path>`` column per metric and parameter.
        """
        query: List[tuple] = []
        for k, v in (filters or {}).items():
            query.append((k, ",".join(map(str, v)) if isinstance(v, (list, tuple)) else _filter_value(v)))
        if sort:
            query.append(("sort", sort))
        rows = []
        cursor = None
        while True:
            page = self._get("/v1/backtests", query + ([("cursor", cursor)] if cursor else []))
            rows.extend(page["runs"])
            cursor = page.get("nextCursor")
            if not cursor or (limit is not None and len(rows) >= limit):
                break
        if limit is not None:
            rows = rows[:limit]
        return _runs_frame(rows)

    def compare(self, ids: Iterable[str]) -> dict:
        """GET /v1/backtests/compare: metrics side by side, the parameters that differ, and whether
        each run's candle data changed since it was recorded."""
        return self._get("/v1/backtests/compare", [("ids", ",".join(ids))])


def _filter_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (datetime, date, pd.Timestamp)):
        return _time(v) or ""
    return str(v)


def _flatten(prefix: str, value: Any, out: Dict[str, Any]) -> None:
    if isinstance(value, dict) and value:
        for k, v in value.items():
            _flatten(f"{prefix}.{k}", v, out)
    else:
        out[prefix] = value


def _runs_frame(runs: List[dict]) -> pd.DataFrame:
    rows = []
    for r in runs:
        row: Dict[str, Any] = {
            "id": r["id"],
            "created_at": r.get("createdAt"),
            "strategy": r.get("strategy"),
            "strategy_version": r.get("strategyVersion"),
            "tags": r.get("tags", []),
        }
        for name, value in (r.get("metrics") or {}).items():
            row[f"metric.{name}"] = value
        for name, value in (r.get("parameters") or {}).items():
            _flatten(f"param.{name}", value, row)
        rows.append(row)
    df = pd.DataFrame(rows, columns=None if rows else ["id", "created_at", "strategy", "strategy_version", "tags"])
    df["created_at"] = pd.to_datetime(df["created_at"], utc=True)
    return df


def read_export(path: str, *, exact: bool = False) -> pd.DataFrame:
    """A Parquet file written by ``candlekeep export`` as a DataFrame shaped like ``Client.candles``
    (indexed by open time, UTC), with the exchange, symbol and interval columns kept. Prices and
    volumes (and the optional ``taker_buy_volume``, ``taker_buy_quote_volume`` and ``vwap``, NaN
    where absent) are float64, or exact ``decimal.Decimal`` with ``exact=True``."""
    import pyarrow.parquet as pq

    df = pq.read_table(path).to_pandas()
    for col in ["exchange", "symbol", "interval"]:
        df[col] = df[col].astype(str)
    if not exact:
        for col in PRICE_COLUMNS + [c for c in EXTRA_COLUMNS if c in df.columns]:
            df[col] = df[col].astype("float64")
    df["trades"] = df["trades"].astype("Int64")
    return df.set_index("open_time")
