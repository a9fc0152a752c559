"""The ``synthetic`` provider: a seeded, correlated universe of any size, for benchmarks.

Model (per symbol *i*, weekday *t*; all parameters fixed by the seed and the symbol):

    r[i, t] = mu_i + beta_i * market[t] + sector[s(i), t] + sigma_i * eps[i, t]

- ``market`` ~ N(0.0003, 0.011²) a day, shared by every symbol — what makes breadth move;
- ``sector`` ~ N(0, 0.007²), one series per each of 11 sectors; ``s(i)`` comes from a
  BLAKE2b hash of the symbol (not Python's ``hash()``, which is salted per process), so a
  symbol is always in the same sector and symbols of a sector correlate more;
- ``eps`` is Student-t with 4 degrees of freedom scaled to unit variance: fat tails, so
  the universe has the occasional 5-sigma day that breadth thrusts and stops need;
- ``beta_i`` ∈ [0.5, 1.5], ``sigma_i`` ∈ [0.8 %, 2.5 %], start price 20–500 and typical
  volume 200 k–20 M shares (log-uniform) come from a hash of (seed, symbol).

Close is a geometric random walk ``close = p0 * exp(cumsum(r))``. The open gaps from the
previous close by 30 % of the day's move plus noise; high and low extend beyond
max/min(open, close) by exponentially distributed wicks, so ``low <= open, close <=
high`` always. Volume is lognormal and rises with |return|, as real volume does on big
days. Prices are rounded to 1/10,000.

**Path independence.** The bar for (seed, symbol, date) must not depend on the range
asked for, or re-fetching a window would rewrite history in the lake. So every walk
starts at a fixed epoch (2000-01-03, a Monday) on the Monday–Friday calendar (there are
no holidays here), and random numbers are drawn in fixed blocks of 1,024 weekdays, each
block seeded by ``(seed, symbol, stream, block)`` through NumPy's ``SeedSequence``. A
request computes the walk from the epoch and slices; no bars exist before the epoch.
(The values are pinned by a test: a NumPy release that changed its generators would
show up there rather than silently rewrite stored data.)

**Intraday** (1m, 5m, 15m, 1h): each weekday has a 14:30–21:00 UTC session (390
minutes; the US regular session in winter, kept fixed in UTC for simplicity). A
one-minute log-price path is a Brownian bridge from the day's open to its close, seeded
by (seed, symbol, day); it is then stretched monotonically above max(open, close) and
below min(open, close) so that its extremes are exactly the daily high and low, and the
daily volume is spread over the minutes with a U-shaped profile (integer shares that sum
to the daily volume). Coarser bars aggregate the minutes, so 1m, 5m, 15m, 1h and 1d bars
of a symbol all agree: first open, last close, max high, min low, total volume.

:func:`generate_bars` produces many symbols at once, vectorised over (symbols × days);
``SyntheticProvider.fetch`` calls it for one symbol, so both give identical rows.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache

import numpy as np
import polars as pl

from breadthflow.core.config import Settings
from breadthflow.core.errors import InvalidInputError
from breadthflow.core.models import Timeframe, bar_schema, parse_date
from breadthflow.data.providers import PROVIDER_COLUMNS, Provider, ProviderBars, register_provider

__all__ = [
    "EPOCH",
    "SECTORS",
    "SyntheticProvider",
    "generate_bars",
    "synthetic_sector",
    "synthetic_symbols",
]

EPOCH = dt.date(2000, 1, 3)  # a Monday: weekday index 0
SECTORS = (
    "Communication Services",
    "Consumer Discretionary",
    "Consumer Staples",
    "Energy",
    "Financials",
    "Health Care",
    "Industrials",
    "Information Technology",
    "Materials",
    "Real Estate",
    "Utilities",
)
DEFAULT_SEED = 42

# Daily model parameters (log-returns).
_MARKET_DRIFT = 0.0003
_MARKET_VOL = 0.011
_SECTOR_VOL = 0.007
_T_DOF = 4.0  # Student-t degrees of freedom of the idiosyncratic noise
_GAP_SHARE = 0.3  # part of the close-to-close move that happens overnight
_WICK = 0.6  # wick size, in units of the symbol's idiosyncratic daily vol
_VOLUME_NOISE = 0.3
_VOLUME_MOVE = 0.25  # log-volume added per idiosyncratic sigma of |return|
_PRICE_DECIMALS = 4

# Intraday session.
_SESSION_START = dt.time(14, 30)
_SESSION_MINUTES = 390

# Random-stream layout. Never reorder: it would change every generated bar.
_BLOCK = 1024  # weekdays per seeded block
_STREAM_FACTORS = 1
_STREAM_SYMBOL = 2
_STREAM_INTRADAY = 3
_BATCH = 256  # symbols per vectorised batch (bounds memory)


@register_provider
class SyntheticProvider(Provider):
    """Seeded synthetic bars for any symbol; option ``seed`` (default 42)."""

    name = "synthetic"
    timeframes = frozenset(Timeframe)

    def __init__(self, settings: Settings, options: Mapping[str, str] | None = None) -> None:
        super().__init__(settings, options)
        self.seed = _parse_seed(self.options.get("seed", DEFAULT_SEED))

    def fetch(
        self, symbol: str, timeframe: Timeframe, start: dt.date, end: dt.date
    ) -> ProviderBars:
        self.check_timeframe(timeframe)
        return ProviderBars(
            generate_bars([symbol], start, end, seed=self.seed, timeframe=timeframe)
        )


def synthetic_symbols(n: int) -> list[str]:
    """``SYN00001`` … ``SYN{n}``, zero-padded to five digits.

    >>> synthetic_symbols(3)
    ['SYN00001', 'SYN00002', 'SYN00003']
    """
    if n < 0:
        raise InvalidInputError(f"number of synthetic symbols must be >= 0, got {n}")
    return [f"SYN{i:05d}" for i in range(1, n + 1)]


def synthetic_sector(symbol: str) -> str:
    """The sector a symbol belongs to in the synthetic universe (the same for every seed)."""
    return SECTORS[_sector_index(symbol)]


def generate_bars(
    symbols: Sequence[str],
    start: dt.date | str,
    end: dt.date | str,
    *,
    seed: int = DEFAULT_SEED,
    timeframe: Timeframe = Timeframe.D1,
) -> pl.DataFrame:
    """Bars for many symbols at once: columns :data:`PROVIDER_COLUMNS`, grouped by symbol
    in the order given, each sorted by date. Identical to per-symbol ``fetch``.

    >>> bars = generate_bars(["SYN00001", "SYN00002"], dt.date(2024, 1, 1), dt.date(2024, 1, 5))
    >>> bars.height, bars["date"].n_unique()
    (10, 5)
    """
    timeframe = Timeframe.parse(timeframe)
    seed = _parse_seed(seed)
    names = [str(s) for s in dict.fromkeys(symbols)]
    first, last = _index_range(parse_date(start, "start date"), parse_date(end, "end date"))
    if not names or last < first:
        return _empty(timeframe)
    _factors(seed, last // _BLOCK + 1)  # warm the shared cache before the threads start

    def one_batch(batch: list[str]) -> list[pl.DataFrame]:
        daily = _daily_batch(batch, first, last, seed)
        if timeframe is Timeframe.D1:
            return [_daily_frame(batch, first, last, daily)]
        return [
            _intraday_frame(symbol, row, first, last, daily, seed, timeframe)
            for row, symbol in enumerate(batch)
        ]

    batches = [names[i : i + _BATCH] for i in range(0, len(names), _BATCH)]
    if len(batches) == 1:
        frames = one_batch(batches[0])
    else:
        # NumPy's generators and ufuncs release the GIL: batches run in parallel. Each
        # batch is self-contained, so the result does not depend on the scheduling.
        with ThreadPoolExecutor(max_workers=_workers(len(batches))) as pool:
            frames = [frame for part in pool.map(one_batch, batches) for frame in part]
    return pl.concat(frames, how="vertical", rechunk=False)


def _workers(batches: int) -> int:
    return max(1, min(batches, os.cpu_count() or 1, 8))


# --- calendar -----------------------------------------------------------------------------


def _weekday_index(day: dt.date) -> int:
    """Index of the first weekday on or after ``day``, counting from :data:`EPOCH`."""
    weeks, rest = divmod((day - EPOCH).days, 7)
    return weeks * 5 + min(rest, 5)


def _index_range(start: dt.date, end: dt.date) -> tuple[int, int]:
    """Weekday indexes covering start..end (inclusive); empty when last < first."""
    first = max(_weekday_index(start), 0)
    last = _weekday_index(end + dt.timedelta(days=1)) - 1
    return first, last


def _index_dates(first: int, last: int) -> np.ndarray:
    """Calendar dates (datetime64[D]) of weekday indexes first..last."""
    index = np.arange(first, last + 1)
    weeks, rest = np.divmod(index, 5)
    return np.datetime64(EPOCH, "D") + (weeks * 7 + rest).astype("timedelta64[D]")


# --- seeded randomness --------------------------------------------------------------------


def _parse_seed(value: object) -> int:
    try:
        seed = int(str(value).strip())
    except ValueError:
        seed = -1
    if seed < 0:
        raise InvalidInputError(f"synthetic seed '{value}' is not a whole number >= 0")
    return seed


def _digest(text: str, person: bytes) -> bytes:
    return hashlib.blake2b(text.encode(), digest_size=16, person=person).digest()


@lru_cache(maxsize=65_536)
def _symbol_key(symbol: str) -> int:
    return int.from_bytes(_digest(symbol, b"bf-synth-key"), "big")


@lru_cache(maxsize=65_536)
def _sector_index(symbol: str) -> int:
    return int.from_bytes(_digest(symbol, b"bf-synth-sector"), "big") % len(SECTORS)


def _uniforms(seed: int, symbol: str) -> np.ndarray:
    """Five numbers in [0, 1) fixed by (seed, symbol): the symbol's parameters."""
    raw = hashlib.blake2b(f"{seed}:{symbol}".encode(), digest_size=40, person=b"bf-synth-par")
    words = np.frombuffer(raw.digest(), dtype=">u8").astype(np.float64)
    return words / 2.0**64


def _rng(*entropy: int) -> np.random.Generator:
    return np.random.Generator(np.random.PCG64(np.random.SeedSequence(list(entropy))))


@lru_cache(maxsize=512)
def _factor_block(seed: int, block: int) -> np.ndarray:
    """Market (row 0) and sector (rows 1..11) returns of one block of weekdays."""
    draws = _rng(seed, _STREAM_FACTORS, block).standard_normal((1 + len(SECTORS), _BLOCK))
    draws[0] = _MARKET_DRIFT + _MARKET_VOL * draws[0]
    draws[1:] *= _SECTOR_VOL
    return draws


def _factors(seed: int, blocks: int) -> np.ndarray:
    return np.concatenate([_factor_block(seed, b) for b in range(blocks)], axis=1)


def _symbol_block(
    seed: int, key: int, block: int, with_bars: bool
) -> tuple[np.ndarray, np.ndarray | None]:
    """One block of a symbol's draws: Student-t noise of the returns, then (only when the
    block is inside the requested window) the draws of the bars: overnight gap and volume
    (normal), upper and lower wick (exponential). The bar draws come after the return
    draws of the same generator, so skipping them never changes the returns."""
    rng = _rng(seed, key, _STREAM_SYMBOL, block)
    z = rng.standard_normal(_BLOCK)
    e = rng.standard_exponential((2, _BLOCK))
    # Student-t(4) = Z / sqrt(chi2_4 / 4) with chi2_4 = 2 (E1 + E2); scaled to unit variance.
    eps = z / np.sqrt((e[0] + e[1]) / 2.0) / np.sqrt(_T_DOF / (_T_DOF - 2.0))
    if not with_bars:
        return eps, None
    return eps, np.concatenate(
        [rng.standard_normal((2, _BLOCK)), rng.standard_exponential((2, _BLOCK))]
    )


# --- daily bars ---------------------------------------------------------------------------


@dataclass(frozen=True)
class _Daily:
    """Daily OHLCV of a batch of symbols over weekday indexes first..last (2-D arrays,
    one row per symbol), plus each symbol's total daily volatility for the intraday path."""

    open: np.ndarray
    high: np.ndarray
    low: np.ndarray
    close: np.ndarray
    volume: np.ndarray
    day_vol: np.ndarray


def _daily_batch(symbols: list[str], first: int, last: int, seed: int) -> _Daily:
    n_blocks = last // _BLOCK + 1
    length = n_blocks * _BLOCK
    factors = _factors(seed, n_blocks)
    window = range(first // _BLOCK, n_blocks)
    lo = window.start * _BLOCK  # column of the first generated "bars" draw

    k = len(symbols)
    params = np.array([_uniforms(seed, s) for s in symbols])  # (k, 5)
    beta = 0.5 + params[:, 0:1]
    sigma = 0.008 + 0.017 * params[:, 1:2]
    p0 = np.exp(np.log(20.0) + params[:, 2:3] * np.log(500.0 / 20.0))
    base_volume = np.exp(np.log(2e5) + params[:, 3:4] * np.log(100.0))
    drift = (params[:, 4:5] - 0.5) * 0.0004
    sectors = np.array([_sector_index(s) for s in symbols])

    eps = np.empty((k, length))
    bars = np.empty((4, k, len(window) * _BLOCK))
    for row, symbol in enumerate(symbols):
        key = _symbol_key(symbol)
        for block in range(n_blocks):
            cols = slice(block * _BLOCK, (block + 1) * _BLOCK)
            eps[row, cols], bar_draws = _symbol_block(seed, key, block, block in window)
            if bar_draws is not None:
                bars[:, row, block * _BLOCK - lo : (block + 1) * _BLOCK - lo] = bar_draws

    span = slice(0, last + 1)
    returns = drift + beta * factors[0, span] + factors[1 + sectors, span] + sigma * eps[:, span]
    log_close = np.log(p0) + np.cumsum(returns, axis=1)
    prev_log_close = np.concatenate([np.log(p0), log_close[:, :-1]], axis=1)

    cols = slice(first, last + 1)
    bar_cols = slice(first - lo, last + 1 - lo)
    # Copies keep every transcendental op on contiguous arrays, so one symbol alone and
    # the same symbol inside a batch take the same NumPy loops (bit-identical results).
    r = np.ascontiguousarray(returns[:, cols])
    gap_noise, vol_noise, wick_up, wick_down = (
        np.ascontiguousarray(bars[j][:, bar_cols]) for j in range(4)
    )
    close = np.exp(np.ascontiguousarray(log_close[:, cols]))
    open_ = np.exp(
        np.ascontiguousarray(prev_log_close[:, cols]) + _GAP_SHARE * r + 0.25 * sigma * gap_noise
    )
    high = np.maximum(open_, close) * np.exp(_WICK * sigma * wick_up)
    low = np.minimum(open_, close) * np.exp(-_WICK * sigma * wick_down)
    volume = np.rint(
        base_volume * np.exp(_VOLUME_NOISE * vol_noise + _VOLUME_MOVE * np.abs(r - drift) / sigma)
    )
    day_vol = np.sqrt((beta * _MARKET_VOL) ** 2 + _SECTOR_VOL**2 + sigma**2)
    return _Daily(
        open=_round_price(open_),
        high=_round_price(high),
        low=_round_price(low),
        close=_round_price(close),
        volume=np.maximum(volume, 1.0),
        day_vol=day_vol[:, 0],
    )


def _round_price(values: np.ndarray) -> np.ndarray:
    """Round to 1/10,000 (in place) and keep prices positive. Rounding is monotone, so
    low <= open, close <= high survives it."""
    scale = 10.0**_PRICE_DECIMALS
    np.multiply(values, scale, out=values)
    np.rint(values, out=values)
    np.maximum(values, 1.0, out=values)
    np.divide(values, scale, out=values)
    return values


def _daily_frame(symbols: list[str], first: int, last: int, daily: _Daily) -> pl.DataFrame:
    days = last - first + 1
    rows = np.repeat(np.arange(len(symbols)), days)
    return pl.DataFrame(
        {
            "symbol": pl.Series(symbols, dtype=pl.String).gather(rows),
            "date": pl.Series(np.tile(_index_dates(first, last), len(symbols))).cast(pl.Date),
            "open": daily.open.ravel(),
            "high": daily.high.ravel(),
            "low": daily.low.ravel(),
            "close": daily.close.ravel(),
            "volume": daily.volume.ravel(),
            "adj_factor": np.ones(len(rows)),
        }
    ).select(PROVIDER_COLUMNS)


# --- intraday bars ------------------------------------------------------------------------


def _intraday_frame(
    symbol: str,
    row: int,
    first: int,
    last: int,
    daily: _Daily,
    seed: int,
    timeframe: Timeframe,
) -> pl.DataFrame:
    """Intraday bars of one symbol, built minute by minute from its daily bars."""
    days = last - first + 1
    n = _SESSION_MINUTES
    key = _symbol_key(symbol)
    draws = np.stack(
        [_rng(seed, key, _STREAM_INTRADAY, first + d).standard_normal((4, n)) for d in range(days)],
        axis=1,
    )  # (4, days, n): path steps, two wicks, volume noise
    steps, wick_up, wick_down, vol_noise = draws

    o_day, h_day, l_day, c_day = (
        np.ascontiguousarray(x[row][:, None])
        for x in (daily.open, daily.high, daily.low, daily.close)
    )
    a, b = np.log(o_day), np.log(c_day)
    step_vol = daily.day_vol[row] / np.sqrt(n)

    # Brownian bridge from log(open) at minute 0 to log(close) at minute 390.
    walk = np.concatenate([np.zeros((days, 1)), np.cumsum(steps * step_vol, axis=1)], axis=1)
    frac = np.arange(n + 1) / n
    path = a + (b - a) * frac + (walk - frac * walk[:, -1:])
    m_open, m_close = path[:, :-1], path[:, 1:]
    wick = 0.5 * step_vol
    m_high = np.maximum(m_open, m_close) + wick * np.abs(wick_up)
    m_low = np.minimum(m_open, m_close) - wick * np.abs(wick_down)

    # Stretch the path (monotonically, so each minute stays ordered) above max(open, close)
    # and below min(open, close) until its extremes are exactly the daily high and low.
    top, bottom = np.maximum(a, b), np.minimum(a, b)
    up = _ratio(np.log(h_day) - top, m_high.max(axis=1, keepdims=True) - top)
    down = _ratio(np.log(l_day) - bottom, m_low.min(axis=1, keepdims=True) - bottom)

    def stretch(x: np.ndarray) -> np.ndarray:
        y = np.where(x > top, top + (x - top) * up, x)
        y = np.where(x < bottom, bottom + (x - bottom) * down, y)
        return np.clip(_round_price(np.exp(y)), l_day, h_day)

    m_open, m_high, m_low, m_close = (stretch(x) for x in (m_open, m_high, m_low, m_close))
    m_open[:, 0], m_close[:, -1] = o_day[:, 0], c_day[:, 0]
    m_high = np.maximum(m_high, np.maximum(m_open, m_close))
    m_low = np.minimum(m_low, np.minimum(m_open, m_close))
    every_day = np.arange(days)
    m_high[every_day, m_high.argmax(axis=1)] = h_day[:, 0]
    m_low[every_day, m_low.argmin(axis=1)] = l_day[:, 0]

    # Volume: U-shaped profile with noise, in whole shares summing to the daily volume.
    minute = np.arange(n)
    profile = (1.0 + 1.5 * ((minute - n / 2) / (n / 2)) ** 2) * np.exp(_VOLUME_NOISE * vol_noise)
    cumulative = np.rint(daily.volume[row][:, None] * np.cumsum(profile, axis=1)
                         / profile.sum(axis=1, keepdims=True))  # fmt: skip
    m_volume = np.diff(cumulative, axis=1, prepend=0.0)

    # Aggregate minutes into bars of the timeframe (the last 1h bar is 30 minutes long).
    size = timeframe.minutes
    starts = np.arange(0, n, size)
    ends = np.minimum(starts + size, n) - 1
    bar_open, bar_close = m_open[:, starts], m_close[:, ends]
    bar_high = np.maximum.reduceat(m_high, starts, axis=1)
    bar_low = np.minimum.reduceat(m_low, starts, axis=1)
    bar_volume = np.add.reduceat(m_volume, starts, axis=1)

    session = np.timedelta64(_SESSION_START.hour * 60 + _SESSION_START.minute, "m")
    day_starts = _index_dates(first, last).astype("datetime64[us]") + session.astype(
        "timedelta64[us]"
    )
    stamps = (day_starts[:, None] + (starts * 60_000_000).astype("timedelta64[us]")).ravel()
    bars = len(starts) * days
    return pl.DataFrame(
        {
            "symbol": pl.Series([symbol], dtype=pl.String).gather(np.zeros(bars, dtype=np.int64)),
            "date": pl.Series(stamps).dt.replace_time_zone("UTC"),
            "open": bar_open.ravel(),
            "high": bar_high.ravel(),
            "low": bar_low.ravel(),
            "close": bar_close.ravel(),
            "volume": bar_volume.ravel(),
            "adj_factor": np.ones(bars),
        }
    ).select(PROVIDER_COLUMNS)


def _ratio(target: np.ndarray, actual: np.ndarray) -> np.ndarray:
    """target / actual, 0 where actual is 0 (a path that never left [open, close])."""
    safe = np.where(actual != 0, actual, 1.0)
    return np.where(actual != 0, target / safe, 0.0)


def _empty(timeframe: Timeframe) -> pl.DataFrame:
    schema = bar_schema(timeframe)
    return pl.DataFrame(schema={name: schema[name] for name in PROVIDER_COLUMNS})
