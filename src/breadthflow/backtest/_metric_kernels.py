"""Compiled statistics of a backtest (numba): arrays in, one ``float64`` vector out.

:mod:`breadthflow.backtest.metrics` prepares the arrays (from frames or straight from the
engine) and turns the vector into the stats dict; the formulas are written down in
docs/backtest-metrics.md. One pass per array instead of dozens of NumPy calls: a
2,520-day run's statistics cost microseconds, not the per-call overhead of each NumPy
operation. NaN in an output slot means "undefined" (the dict gets ``None``).

``error_model="numpy"``: a division by zero gives ``inf``/``NaN`` as in NumPy (and then
``None``), never a Python exception.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

# A standard deviation (or downside deviation, or drawdown) this small is treated as zero:
# a constant-growth curve has return noise of ~1e-17 that would otherwise give a Sharpe of 1e15.
ZERO_TOLERANCE = 1e-12
DAYS_PER_YEAR = 365.25  # calendar years for the CAGR, as backtesting.py

# curve_stats output slots
(
    C_TOTAL, C_ANN, C_CAGR, C_VOL, C_SHARPE, C_SORTINO, C_OMEGA, C_MAX_DD, C_AVG_DD,
    C_MAX_DD_DAYS, C_AVG_DD_DAYS, C_CALMAR, C_EXPOSED, C_AVG_EXPOSURE, C_BUY_HOLD, C_ALPHA,
    C_BETA,
) = range(17)  # fmt: skip
CURVE_FIELDS = 17
# trade_stats output slots
(
    T_N, T_WINS, T_LOSSES, T_WIN_RATE, T_BEST, T_WORST, T_AVG, T_AVG_WIN, T_AVG_LOSS,
    T_MAX_BARS, T_AVG_BARS, T_PROFIT_FACTOR, T_PAYOFF, T_EXPECTANCY, T_EXPECTANCY_PCT, T_SQN,
    T_KELLY, T_FEES, T_OPEN, T_OPEN_PNL,
) = range(20)  # fmt: skip
TRADE_FIELDS = 20


# Sums run in four interleaved partial sums: a single running sum waits on the previous
# addition at every element, four let the CPU overlap them (about 4× faster on these
# lengths). Their rounding is no worse than one running sum's.


@njit(cache=True, error_model="numpy")
def _sum(x):
    n = x.shape[0]
    s0 = s1 = s2 = s3 = 0.0
    i = 0
    while i + 4 <= n:
        s0 += x[i]
        s1 += x[i + 1]
        s2 += x[i + 2]
        s3 += x[i + 3]
        i += 4
    while i < n:
        s0 += x[i]
        i += 1
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, error_model="numpy")
def _sum_sq_dev(x, mean):
    """``Σ (x - mean)²``."""
    n = x.shape[0]
    s0 = s1 = s2 = s3 = 0.0
    i = 0
    while i + 4 <= n:
        d0, d1, d2, d3 = x[i] - mean, x[i + 1] - mean, x[i + 2] - mean, x[i + 3] - mean
        s0 += d0 * d0
        s1 += d1 * d1
        s2 += d2 * d2
        s3 += d3 * d3
        i += 4
    while i < n:
        d = x[i] - mean
        s0 += d * d
        i += 1
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, error_model="numpy")
def _sum_cross_dev(x, x_mean, y, y_mean):
    """``Σ (x - x_mean)(y - y_mean)``."""
    n = x.shape[0]
    s0 = s1 = s2 = s3 = 0.0
    i = 0
    while i + 4 <= n:
        s0 += (x[i] - x_mean) * (y[i] - y_mean)
        s1 += (x[i + 1] - x_mean) * (y[i + 1] - y_mean)
        s2 += (x[i + 2] - x_mean) * (y[i + 2] - y_mean)
        s3 += (x[i + 3] - x_mean) * (y[i + 3] - y_mean)
        i += 4
    while i < n:
        s0 += (x[i] - x_mean) * (y[i] - y_mean)
        i += 1
    return (s0 + s1) + (s2 + s3)


@njit(cache=True, error_model="numpy")
def _mean(x):
    return _sum(x) / x.shape[0]


@njit(cache=True, error_model="numpy")
def _std(x, mean):
    """Sample standard deviation (``ddof=1``) around a known mean."""
    return math.sqrt(_sum_sq_dev(x, mean) / (x.shape[0] - 1))


@njit(cache=True, error_model="numpy")
def _returns(values, rf_daily):
    """Simple per-bar returns minus ``rf_daily``; the second value is False when one is
    not finite."""
    n = values.shape[0]
    r = np.empty(max(n - 1, 0))
    for i in range(1, n):
        r[i - 1] = values[i] / values[i - 1] - 1.0 - rf_daily
    return r, _all_finite(r)


@njit(cache=True, error_model="numpy")
def _all_finite(x):
    # A finite sum (the usual case) means no NaN or ±inf; otherwise look at every value,
    # since finite values can also add up to an overflow.
    if math.isfinite(_sum(x)):
        return True
    bad = 0
    for v in x:
        bad += not math.isfinite(v)
    return bad == 0


@njit(cache=True, error_model="numpy")
def _sortino_omega_sums(r, rf_daily):
    """``Σ min(r - rf, 0)²``, ``Σ max(r, 0)``, ``Σ max(-r, 0)``, two elements at a time."""
    n = r.shape[0]
    b0 = b1 = g0 = g1 = l0 = l1 = 0.0
    i = 0
    while i + 2 <= n:
        v0, v1 = r[i], r[i + 1]
        e0, e1 = min(v0 - rf_daily, 0.0), min(v1 - rf_daily, 0.0)
        b0 += e0 * e0
        b1 += e1 * e1
        g0 += max(v0, 0.0)
        g1 += max(v1, 0.0)
        l0 += max(-v0, 0.0)
        l1 += max(-v1, 0.0)
        i += 2
    if i < n:
        v0 = r[i]
        e0 = min(v0 - rf_daily, 0.0)
        b0 += e0 * e0
        g0 += max(v0, 0.0)
        l0 += max(-v0, 0.0)
    return b0 + b1, g0 + g1, l0 + l1


@njit(cache=True, error_model="numpy")
def curve_stats(
    days, values, drawdown, exposure, bench_values, bench_close, rf_daily, periods_per_year, out
):  # fmt: skip
    """Statistics of an equity curve (``n >= 1`` days) into ``out[C_*]``.

    ``drawdown``: ``values / running peak - 1`` or an empty array (computed here);
    ``exposure``: gross exposure per day (NaN counts as 0), or empty (slots stay NaN);
    ``bench_values``/``bench_close``: the equity and the benchmark on the dates both have
    (empty: no benchmark).
    """
    out[:] = np.nan
    n = values.shape[0]
    first, final = values[0], values[n - 1]
    growth = final / first if first > 0 else np.nan
    out[C_TOTAL] = (growth - 1.0) * 100.0
    if n >= 2 and growth >= 0:
        # Geometric: the constant per-bar rate that turns the first value into the last,
        # compounded over a year of bars — equals backtesting.py's "Return (Ann.)".
        out[C_ANN] = (growth ** (periods_per_year / (n - 1)) - 1.0) * 100.0
        years = (days[n - 1] - days[0]) / DAYS_PER_YEAR
        if years > 0:
            out[C_CAGR] = (growth ** (1.0 / years) - 1.0) * 100.0

    if n >= 2:
        r, finite = _returns(values, 0.0)
        if finite:
            scale = math.sqrt(periods_per_year)
            mean = _mean(r)
            excess_mean = mean - rf_daily
            if n >= 3:
                std = _std(r, mean)
                out[C_VOL] = std * scale * 100.0
                if std > ZERO_TOLERANCE:
                    out[C_SHARPE] = excess_mean / std * scale
            # Downside deviation below the risk-free rate, over all bars (Sortino & Price).
            below, gains, losses = _sortino_omega_sums(r, rf_daily)
            downside = math.sqrt(below / r.shape[0])
            if downside > ZERO_TOLERANCE:
                out[C_SORTINO] = excess_mean / downside * scale
            if losses > ZERO_TOLERANCE:
                out[C_OMEGA] = gains / losses

    _drawdowns(days, values, drawdown, out)
    if not math.isnan(out[C_ANN]) and not math.isnan(out[C_MAX_DD]):
        max_dd = abs(out[C_MAX_DD])
        if max_dd > ZERO_TOLERANCE:
            out[C_CALMAR] = out[C_ANN] / max_dd

    if exposure.shape[0] == n:
        held = 0
        t0 = t1 = 0.0
        for i in range(0, n - 1, 2):  # two partial sums; NaN (no equity) counts as flat
            v0, v1 = exposure[i], exposure[i + 1]
            held += (v0 > 0.0) + (v1 > 0.0)
            t0 += v0 if v0 == v0 else 0.0
            t1 += v1 if v1 == v1 else 0.0
        if n % 2:
            v0 = exposure[n - 1]
            held += v0 > 0.0
            t0 += v0 if v0 == v0 else 0.0
        total = t0 + t1
        out[C_EXPOSED] = held / n * 100.0
        out[C_AVG_EXPOSURE] = total / n * 100.0

    m = bench_close.shape[0]
    if m >= 1:
        if bench_close[0] > 0:
            out[C_BUY_HOLD] = (bench_close[m - 1] / bench_close[0] - 1.0) * 100.0
        if m >= 3:  # a regression needs two returns at least
            y, y_finite = _returns(bench_values, rf_daily)
            x, x_finite = _returns(bench_close, rf_daily)
            if x_finite and y_finite:
                x_mean, y_mean = _mean(x), _mean(y)
                var_x = _sum_sq_dev(x, x_mean) / (x.shape[0] - 1)
                cov = _sum_cross_dev(x, x_mean, y, y_mean) / (x.shape[0] - 1)
                if var_x > ZERO_TOLERANCE**2:
                    # OLS y = alpha + beta·x on excess returns (Jensen's alpha), annualised simply.
                    beta = cov / var_x
                    out[C_BETA] = beta
                    out[C_ALPHA] = (y_mean - beta * x_mean) * periods_per_year * 100.0


@njit(cache=True, error_model="numpy")
def _drawdowns(days, values, drawdown, out):
    """Depths and calendar durations of the drawdown periods. A period is a run of bars
    under the running peak: it starts at the peak (the bar before the run) and ends on
    the bar that regains the peak, or on the last bar."""
    n = values.shape[0]
    if values[0] <= 0:  # a running peak <= 0 has no drawdown in percent
        return
    if drawdown.shape[0] != n:
        drawdown = np.empty(n)
        peak = values[0]
        for i in range(n):
            if values[i] > peak:
                peak = values[i]
            drawdown[i] = values[i] / peak - 1.0
    if not _all_finite(drawdown):
        return
    periods = 0
    depth_sum = 0.0
    deepest = 0.0
    longest = 0
    duration_sum = 0
    i = 0
    while i < n:
        if drawdown[i] < 0.0:
            start = i
            depth = drawdown[i]
            while i < n and drawdown[i] < 0.0:
                if drawdown[i] < depth:
                    depth = drawdown[i]
                i += 1
            end = min(i, n - 1)
            duration = days[end] - days[start - 1]
            periods += 1
            depth_sum += depth
            duration_sum += duration
            if depth < deepest:
                deepest = depth
            if duration > longest:
                longest = duration
        else:
            i += 1
    out[C_MAX_DD] = deepest * 100.0
    out[C_MAX_DD_DAYS] = longest
    if periods:
        out[C_AVG_DD] = depth_sum / periods * 100.0
        out[C_AVG_DD_DAYS] = duration_sum / periods


@njit(cache=True, error_model="numpy")
def trade_stats(pnl, pct, bars_held, fees, is_open, out):
    """Statistics of the closed trades (``is_open`` False) and the fee and open-trade
    totals of all, into ``out[T_*]``. ``bars_held`` may be empty (no such column)."""
    out[:] = np.nan
    k = pnl.shape[0]
    n = 0
    n_wins = 0
    n_losses = 0
    pnl_sum = 0.0
    pct_sum = 0.0
    win_sum = 0.0
    loss_sum = 0.0
    win_pct = 0.0
    loss_pct = 0.0
    log_growth = 0.0
    all_grow = True
    best = -np.inf
    worst = np.inf
    pct_nan = False
    bars_max = -np.inf
    bars_sum = 0.0
    bars_nan = bars_held.shape[0] != k
    fee_sum = 0.0
    n_open = 0
    open_pnl = 0.0
    for i in range(k):
        if fees[i] == fees[i]:  # unknown fees count as none
            fee_sum += fees[i]
        if is_open[i]:
            n_open += 1
            open_pnl += pnl[i]
            continue
        n += 1
        p, q = pnl[i], pct[i]
        pnl_sum += p
        pct_sum += q
        if p > 0:
            n_wins += 1
            win_sum += p
            win_pct += q
        elif p < 0:
            n_losses += 1
            loss_sum += p
            loss_pct += q
        if q != q:
            pct_nan = True
        else:
            best = max(best, q)
            worst = min(worst, q)
        growth = 1.0 + q / 100.0
        if growth > 0:
            log_growth += math.log(growth)
        else:
            all_grow = False
        if not bars_nan:
            b = bars_held[i]
            if b != b:
                bars_nan = True
            else:
                bars_max = max(bars_max, b)
                bars_sum += b
    out[T_FEES] = fee_sum
    out[T_OPEN] = n_open
    out[T_OPEN_PNL] = open_pnl
    out[T_N] = n
    out[T_WINS] = n_wins
    out[T_LOSSES] = n_losses
    if n == 0:
        return
    win_rate = n_wins / n
    mean = pnl_sum / n
    out[T_WIN_RATE] = win_rate * 100.0
    out[T_BEST] = np.nan if pct_nan else best
    out[T_WORST] = np.nan if pct_nan else worst
    out[T_EXPECTANCY] = mean
    out[T_EXPECTANCY_PCT] = pct_sum / n
    if all_grow:
        # Geometric mean, as backtesting.py's "Avg. Trade"; the arithmetic one is expectancy_pct.
        out[T_AVG] = (math.exp(log_growth / n) - 1.0) * 100.0
    if n_wins:
        out[T_AVG_WIN] = win_pct / n_wins
    if n_losses:
        out[T_AVG_LOSS] = loss_pct / n_losses
        out[T_PROFIT_FACTOR] = win_sum / abs(loss_sum)
    if n_wins and n_losses:
        payoff = (win_sum / n_wins) / abs(loss_sum / n_losses)
        out[T_PAYOFF] = payoff
        out[T_KELLY] = win_rate - (1.0 - win_rate) / payoff
    if n >= 2:
        total = 0.0
        for i in range(k):
            if not is_open[i]:
                d = pnl[i] - mean
                total += d * d
        std = math.sqrt(total / (n - 1))
        if std > ZERO_TOLERANCE:
            out[T_SQN] = math.sqrt(n) * mean / std  # Van Tharp's System Quality Number
    if not bars_nan:
        out[T_MAX_BARS] = bars_max
        out[T_AVG_BARS] = bars_sum / n
