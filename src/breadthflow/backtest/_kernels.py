"""Compiled inner loops of the backtest engine (numba), plain arrays in and out.

Nothing here knows about frames, dates, symbols or configuration objects: the wrappers in
:mod:`breadthflow.backtest.engine` and :mod:`breadthflow.backtest.sweep` unpack a
:class:`~breadthflow.backtest.config.BacktestConfig` into scalars and build frames from the
arrays these kernels fill. The trading rules are written down in docs/backtesting.md; the
helpers below are shared by the per-symbol, portfolio and sweep kernels so that all three
apply them with the same arithmetic.

A position lives in a small ``float64`` vector (fields ``P_*``); a trade is written as one
row of ``trade_ints`` (``T_*``) and one of ``trade_floats`` (``F_*``).
"""

from __future__ import annotations

import numpy as np
from numba import njit, prange

# --- codes shared with the wrappers ---------------------------------------------------------

REASON_SIGNAL, REASON_STOP_LOSS, REASON_TAKE_PROFIT, REASON_TRAILING, REASON_END = 1, 2, 3, 4, 5
REASONS = {
    REASON_SIGNAL: "signal",
    REASON_STOP_LOSS: "stop_loss",
    REASON_TAKE_PROFIT: "take_profit",
    REASON_TRAILING: "trailing_stop",
    REASON_END: "end",
}
SIZING_CODES = {"all_in": 0, "fixed_fraction": 1, "equal_weight": 2}

# position vector fields
P_SIDE, P_SHARES, P_ENTRY, P_ROW, P_CASH, P_FEES, P_BASIS, P_REF = range(8)
P_FIELDS = 8
# trade rows: ints (symbol, side, entry row, exit row or -1, reason) and floats
T_SYMBOL, T_SIDE, T_ENTRY_ROW, T_EXIT_ROW, T_REASON = range(5)
F_ENTRY, F_EXIT, F_SHARES, F_PNL, F_BASIS, F_FEES = range(6)
TRADE_INTS, TRADE_FLOATS = 5, 6
# per-account statistics returned by :func:`simulate_account` (after the trade count)
STAT_FIELDS = 7  # final equity, max drawdown, return mean, return M2, returns, exposure sum, -
SMA_TIE_TOLERANCE = 1e-9  # breadthflow.indicators.breadth.SMA_TIE_TOLERANCE (numba wants a literal)


# --- shared rules -----------------------------------------------------------------------------


@njit(cache=True)
def _budget(sizing, fraction, slots, equity, available, margin):
    """Money one entry may commit: all available cash, a fraction of equity, or an equal
    share of equity — capped at the available cash unless trading on margin."""
    if sizing == 0:
        spend = available
    elif sizing == 1:
        spend = fraction * equity
    else:
        spend = equity / slots
    if not margin and spend > available:
        spend = available
    return spend


@njit(cache=True)
def _enter(pos, side, spend, price, row, cost, integer):
    """Open a position worth at most ``spend`` (costs included) at ``price``; return the
    cash change (negative for a long, the net sale proceeds for a short). No position is
    opened — and 0 returned — when the budget buys no shares."""
    if not spend > 0.0:
        return 0.0
    shares = spend / (price * (1.0 + cost))
    if integer:
        shares = np.floor(shares)
    if not shares > 0.0:
        return 0.0
    value = shares * price
    fees = value * cost
    basis = value + fees
    if side > 0:
        # Rounding guard: the product may exceed the budget by an ulp; cash must not.
        paid = min(basis, spend)
        # Never a negative fee: with zero costs the overshoot is all in the value.
        fees = max(paid - value, 0.0)
        cash = -paid
        basis = paid
    else:
        cash = value - fees
    pos[P_SIDE] = side
    pos[P_SHARES] = shares
    pos[P_ENTRY] = price
    pos[P_ROW] = row
    pos[P_CASH] = cash
    pos[P_FEES] = fees
    pos[P_BASIS] = basis
    pos[P_REF] = price
    return cash


@njit(cache=True)
def _exit(pos, price, row, reason, symbol, cost, trade_ints, trade_floats, k, record):
    """Close the position at ``price``; return (cash change, trade count + 1). The trade is
    written to row ``k`` of the trade arrays when ``record``."""
    side = pos[P_SIDE]
    shares = pos[P_SHARES]
    value = shares * price
    fees = value * cost
    cash = value - fees if side > 0 else -(value + fees)
    if record:
        _write_trade(
            trade_ints, trade_floats, k, symbol, pos, row, reason, price,
            pos[P_CASH] + cash, pos[P_FEES] + fees,
        )  # fmt: skip
    pos[P_SIDE] = 0.0
    pos[P_SHARES] = 0.0
    return cash, k + 1


@njit(cache=True)
def _write_trade(trade_ints, trade_floats, k, symbol, pos, exit_row, reason, exit_price, pnl, fees):
    trade_ints[k, T_SYMBOL] = symbol
    trade_ints[k, T_SIDE] = int(pos[P_SIDE])
    trade_ints[k, T_ENTRY_ROW] = int(pos[P_ROW])
    trade_ints[k, T_EXIT_ROW] = exit_row
    trade_ints[k, T_REASON] = reason
    trade_floats[k, F_ENTRY] = pos[P_ENTRY]
    trade_floats[k, F_EXIT] = exit_price
    trade_floats[k, F_SHARES] = pos[P_SHARES]
    trade_floats[k, F_PNL] = pnl
    trade_floats[k, F_BASIS] = pos[P_BASIS]
    trade_floats[k, F_FEES] = fees


@njit(cache=True)
def _end_trade(pos, last_close, symbol, trade_ints, trade_floats, k, record):
    """Report a position still open after the last bar: valued at the last close, with no
    exit costs (so the trades' P&L adds up to the final equity)."""
    if record:
        pnl = pos[P_CASH] + pos[P_SIDE] * pos[P_SHARES] * last_close
        _write_trade(
            trade_ints, trade_floats, k, symbol, pos, np.int64(-1), np.int64(REASON_END),
            last_close, pnl,
            pos[P_FEES],
        )  # fmt: skip
    return k + 1


@njit(cache=True)
def _stop(pos, o, h, lo, stop_loss, take_profit, trailing):
    """(reason, fill price) of the stop that closes the position on this bar, or (0, NaN).

    Levels come from the entry fill (stop loss, take profit) and from the best close since
    the entry, seeded with the entry price (trailing). A bar that opens beyond a level fills
    at its open. When several are hit, stop loss wins, then trailing stop, then take profit:
    the bar's path is unknown, so the worse outcome is assumed."""
    entry = pos[P_ENTRY]
    ref = pos[P_REF]
    if pos[P_SIDE] > 0:
        if stop_loss == stop_loss:
            level = entry * (1.0 - stop_loss)
            if lo <= level:
                return REASON_STOP_LOSS, min(o, level)
        if trailing == trailing:
            level = ref * (1.0 - trailing)
            if lo <= level:
                return REASON_TRAILING, min(o, level)
        if take_profit == take_profit:
            level = entry * (1.0 + take_profit)
            if h >= level:
                return REASON_TAKE_PROFIT, max(o, level)
    else:
        if stop_loss == stop_loss:
            level = entry * (1.0 + stop_loss)
            if h >= level:
                return REASON_STOP_LOSS, max(o, level)
        if trailing == trailing:
            level = ref * (1.0 + trailing)
            if h >= level:
                return REASON_TRAILING, max(o, level)
        if take_profit == take_profit:
            level = entry * (1.0 - take_profit)
            if lo <= level:
                return REASON_TAKE_PROFIT, min(o, level)
    return 0, np.nan


@njit(cache=True)
def _signal(entry, exit_):
    """+1 (entry), -1 (exit) or 0; an entry and an exit on the same bar cancel out."""
    if entry and not exit_:
        return 1
    if exit_ and not entry:
        return -1
    return 0


# --- one account, one symbol ----------------------------------------------------------------


@njit(cache=True)
def simulate_account(
    o, h, lo, c, entries, exits, symbol, cash0, cost, exec_open, longshort, sizing,
    fraction, stop_loss, take_profit, trailing, integer, margin,
    equity_out, cash_out, gross_out, write, trade_ints, trade_floats, k, record,
):  # fmt: skip
    """Trade one symbol in its own account, bar by bar.

    Fills ``equity_out``/``cash_out``/``gross_out`` (length T) when ``write``; writes
    trades from row ``k`` when ``record``. Returns ``(k_after, final_equity, max_drawdown,
    return_mean, return_m2, n_returns, exposure_sum)`` — without ``write`` the statistics
    are accumulated on the fly (Welford for the daily returns) so a sweep needs no equity
    curve; with it they are left at zero (the caller has the curve, and the Welford
    update's division chain would cost more than the rest of the loop).
    """
    n = c.shape[0]
    pos = np.zeros(P_FIELDS)
    stops = stop_loss == stop_loss or take_profit == take_profit or trailing == trailing
    cash = cash0
    pending = 0
    last = np.nan
    peak = cash0
    max_dd = 0.0
    prev = cash0
    n_ret = 0
    mean = 0.0
    m2 = 0.0
    exposure = 0.0
    for t in range(n):
        bar = c[t] == c[t]
        sig = _signal(entries[t], exits[t])
        if not exec_open and sig != 0:
            pending = sig
        if bar:
            if exec_open and pending != 0:
                cash, k = _order(
                    pos, pending, o[t], t, symbol, cash, cost, longshort, sizing, fraction,
                    integer, margin, trade_ints, trade_floats, k, record,
                )  # fmt: skip
                pending = 0
            if stops and pos[P_SIDE] != 0.0 and (exec_open or pos[P_ROW] < t):
                reason, price = _stop(pos, o[t], h[t], lo[t], stop_loss, take_profit, trailing)
                if reason != 0:
                    got, k = _exit(
                        pos, price, t, reason, symbol, cost, trade_ints, trade_floats, k, record
                    )
                    cash += got
            side = pos[P_SIDE]
            if (side > 0.0 and c[t] > pos[P_REF]) or (side < 0.0 and c[t] < pos[P_REF]):
                pos[P_REF] = c[t]
            last = c[t]
            if not exec_open and pending != 0:
                cash, k = _order(
                    pos, pending, c[t], t, symbol, cash, cost, longshort, sizing, fraction,
                    integer, margin, trade_ints, trade_floats, k, record,
                )  # fmt: skip
                pending = 0
        if exec_open and sig != 0:
            pending = sig  # decided at this close, filled at the symbol's next open
        gross = pos[P_SHARES] * last if pos[P_SIDE] != 0.0 else 0.0
        equity = cash + pos[P_SIDE] * gross
        if write:
            equity_out[t] = equity
            cash_out[t] = cash
            gross_out[t] = gross
        else:  # no curve kept (the sweep): the statistics on the fly instead
            if equity >= peak:
                peak = equity
            else:
                dd = equity / peak - 1.0
                if dd < max_dd:
                    max_dd = dd
            if t > 0:
                r = equity / prev - 1.0
                n_ret += 1
                delta = r - mean
                mean += delta / n_ret
                m2 += delta * (r - mean)
            if gross != 0.0 or equity <= 0.0:  # flat with equity > 0: exposure 0
                exposure += gross / equity if equity > 0.0 else np.nan
        prev = equity
    if pos[P_SIDE] != 0.0:
        k = _end_trade(pos, last, symbol, trade_ints, trade_floats, k, record)
    return k, prev, max_dd, mean, m2, n_ret, exposure


@njit(cache=True)
def _order(
    pos, order, price, row, symbol, cash, cost, longshort, sizing, fraction, integer,
    margin, trade_ints, trade_floats, k, record,
):  # fmt: skip
    """Fill one account's order: close an opposite position, then open the new one."""
    side = pos[P_SIDE]
    if (side > 0.0 and order < 0) or (side < 0.0 and order > 0):
        got, k = _exit(
            pos, price, row, np.int64(REASON_SIGNAL), symbol, cost, trade_ints, trade_floats,
            k, record,
        )  # fmt: skip
        cash += got
    if pos[P_SIDE] == 0.0 and (order > 0 or longshort):
        # Flat: equity and available cash are both the cash.
        spend = _budget(sizing, fraction, 1.0, cash, cash, margin)
        cash += _enter(pos, float(order), spend, price, row, cost, integer)
    return cash, k


@njit(cache=True)
def simulate_accounts(
    o, h, lo, c, entries, exits, cash0, cost, exec_open, longshort, sizing, fraction,
    stop_loss, take_profit, trailing, integer, margin,
    equity_out, cash_out, gross_out, trade_ints, trade_floats, record,
):  # fmt: skip
    """Per-symbol mode: every row of the ``(N, T)`` inputs is its own account. Returns
    the number of trades written. (``record`` is True: a flag passed from Python rather
    than a literal here, so numba compiles the shared helpers once, not per literal.)"""
    k = np.int64(0)
    for j in range(c.shape[0]):
        k = simulate_account(
            o[j], h[j], lo[j], c[j], entries[j], exits[j], j, cash0, cost, exec_open,
            longshort, sizing, fraction, stop_loss, take_profit, trailing, integer, margin,
            equity_out[j], cash_out[j], gross_out[j], record, trade_ints, trade_floats, k,
            record,
        )[0]  # fmt: skip
    return k


# --- one account across all symbols -------------------------------------------------------------


@njit(cache=True)
def _marked(positions, mark, cash):
    """(equity, available cash) with positions marked at ``mark``. Available cash leaves
    out what covering every short would cost, so short proceeds do not fund new entries."""
    equity = cash
    available = cash
    for j in range(positions.shape[0]):
        side = positions[j, P_SIDE]
        if side != 0.0:
            value = positions[j, P_SHARES] * mark[j]
            equity += side * value
            if side < 0.0:
                available -= value
    return equity, available


@njit(cache=True)
def _portfolio_orders(
    positions, pending, prices, row, mark, cash, n_open, cost, longshort, sizing, fraction,
    slots, max_positions, integer, margin, trade_ints, trade_floats, k, record,
):  # fmt: skip
    """Fill the pending orders of every symbol with a price: all exits first (freeing cash),
    then entries in symbol order, each sized on the equity at that moment."""
    n = positions.shape[0]
    for j in range(n):
        order = pending[j]
        if order == 0 or prices[j] != prices[j]:
            continue
        side = positions[j, P_SIDE]
        if (side > 0.0 and order < 0) or (side < 0.0 and order > 0):
            got, k = _exit(
                positions[j], prices[j], row, np.int64(REASON_SIGNAL), j, cost, trade_ints,
                trade_floats, k, record,
            )  # fmt: skip
            cash += got
            n_open -= 1
    for j in range(n):
        order = pending[j]
        if order == 0 or prices[j] != prices[j]:
            continue
        pending[j] = 0  # filled or dropped: an order never waits for cash
        if positions[j, P_SIDE] != 0.0 or not (order > 0 or longshort):
            continue
        if max_positions > 0 and n_open >= max_positions:
            continue
        equity, available = _marked(positions, mark, cash)
        spend = _budget(sizing, fraction, slots, equity, available, margin)
        cash += _enter(positions[j], float(order), spend, prices[j], row, cost, integer)
        if positions[j, P_SIDE] != 0.0:
            n_open += 1
    return cash, n_open, k


@njit(cache=True)
def simulate_portfolio(
    o, h, lo, c, entries, exits, cash0, cost, exec_open, longshort, sizing, fraction,
    max_positions, stop_loss, take_profit, trailing, integer, margin,
    equity_out, cash_out, gross_out, value_out, trade_ints, trade_floats, record,
):  # fmt: skip
    """Portfolio mode: one account trades every column of the ``(T, N)`` inputs, bar by
    bar; ``value_out`` (T, N) gets each symbol's signed position value. Returns the number
    of trades written."""
    n_rows, n = c.shape
    positions = np.zeros((n, P_FIELDS))
    pending = np.zeros(n, dtype=np.int64)
    last = np.full(n, np.nan)
    mark = np.empty(n)
    slots = float(max_positions) if max_positions > 0 else float(n)
    stops = stop_loss == stop_loss or take_profit == take_profit or trailing == trailing
    cash = cash0
    n_open = np.int64(0)
    k = np.int64(0)
    for t in range(n_rows):
        if not exec_open:
            for j in range(n):
                sig = _signal(entries[t, j], exits[t, j])
                if sig != 0:
                    pending[j] = sig
        else:
            for j in range(n):
                mark[j] = o[t, j] if c[t, j] == c[t, j] else last[j]
            cash, n_open, k = _portfolio_orders(
                positions, pending, o[t], t, mark, cash, n_open, cost, longshort, sizing,
                fraction, slots, max_positions, integer, margin, trade_ints, trade_floats, k,
                record,
            )  # fmt: skip
        for j in range(n):
            if c[t, j] != c[t, j]:
                continue
            pos = positions[j]
            if stops and pos[P_SIDE] != 0.0 and (exec_open or pos[P_ROW] < t):
                reason, price = _stop(
                    pos, o[t, j], h[t, j], lo[t, j], stop_loss, take_profit, trailing
                )
                if reason != 0:
                    got, k = _exit(
                        pos, price, t, reason, j, cost, trade_ints, trade_floats, k, record
                    )
                    cash += got
                    n_open -= 1
            side = pos[P_SIDE]
            if (side > 0.0 and c[t, j] > pos[P_REF]) or (side < 0.0 and c[t, j] < pos[P_REF]):
                pos[P_REF] = c[t, j]
            last[j] = c[t, j]
        if not exec_open:
            cash, n_open, k = _portfolio_orders(
                positions, pending, c[t], t, last, cash, n_open, cost, longshort, sizing,
                fraction, slots, max_positions, integer, margin, trade_ints, trade_floats, k,
                record,
            )  # fmt: skip
        equity = cash
        gross = 0.0
        for j in range(n):
            side = positions[j, P_SIDE]
            if side != 0.0:
                value = positions[j, P_SHARES] * last[j]
                equity += side * value
                gross += value
                value_out[t, j] = side * value
            else:
                value_out[t, j] = 0.0
        equity_out[t] = equity
        cash_out[t] = cash
        gross_out[t] = gross
        if exec_open:
            for j in range(n):
                sig = _signal(entries[t, j], exits[t, j])
                if sig != 0:
                    pending[j] = sig
    for j in range(n):
        if positions[j, P_SIDE] != 0.0:
            k = _end_trade(positions[j], last[j], j, trade_ints, trade_floats, k, record)
    return k


# --- the SMA-cross sweep: indicator, crosses and simulation fused per (pair, symbol) -----------


@njit(cache=True, parallel=True)
def sweep_sma_cross(
    o, h, lo, c, fast, slow, cash0, cost, exec_open, longshort, sizing, fraction,
    stop_loss, take_profit, trailing, integer, margin, out, record,
):  # fmt: skip
    """For every symbol (row of the ``(N, T)`` inputs, in parallel) and every pair
    ``(fast[p], slow[p])``: the SMAs of the symbol's closes, their crosses, and the
    per-symbol account simulation — all in the symbol's cache-resident scratch, with no
    equity curve kept. ``out[p, j]`` gets ``(trades, final equity, max drawdown, return
    mean, return M2, returns, exposure sum)``.

    SMAs are taken over the symbol's own bars (NaN rows skipped, as a per-symbol rolling
    mean over long-format bars does), from compensated prefix sums so that a window sum
    has the rounding error of one addition and exact ties stay within the tie tolerance.
    ``record`` is False (passed from Python so the shared helpers compile once).
    """
    n_sym, n = c.shape
    n_pairs = fast.shape[0]
    for jj in prange(n_sym):
        j = np.int64(jj)
        close = c[j]
        rows = np.empty(n, dtype=np.int64)
        hi = np.empty(n + 1)
        lo_sum = np.empty(n + 1)
        m, base = _prefix_sums(close, rows, hi, lo_sum)
        entries = np.zeros(n, dtype=np.bool_)
        exits = np.zeros(n, dtype=np.bool_)
        none = np.empty(0)
        no_ints = np.empty((0, TRADE_INTS), dtype=np.int64)
        no_floats = np.empty((0, TRADE_FLOATS))
        for p in range(n_pairs):
            entries[:] = False
            exits[:] = False
            _cross_marks(rows, m, base, hi, lo_sum, fast[p], slow[p], entries, exits)
            k, final, max_dd, mean, m2, n_ret, exposure = simulate_account(
                o[j], h[j], lo[j], close, entries, exits, j, cash0, cost, exec_open,
                longshort, sizing, fraction, stop_loss, take_profit, trailing, integer,
                margin, none, none, none, record, no_ints, no_floats, np.int64(0), record,
            )  # fmt: skip
            out[p, j, 0] = k
            out[p, j, 1] = final
            out[p, j, 2] = max_dd
            out[p, j, 3] = mean
            out[p, j, 4] = m2
            out[p, j, 5] = n_ret
            out[p, j, 6] = exposure


@njit(cache=True)
def _prefix_sums(close, rows, hi, lo_sum):
    """The rows with a close (``rows[:m]``) and compensated prefix sums of the closes
    minus the first one (``hi`` + ``lo_sum``, ``m + 1`` values): a window sum then has the
    rounding error of one addition. Returns ``(m, base)``."""
    m = 0
    for t in range(close.shape[0]):
        if close[t] == close[t]:
            rows[m] = t
            m += 1
    base = close[rows[0]] if m > 0 else 0.0
    hi[0] = 0.0
    lo_sum[0] = 0.0
    total = 0.0
    comp = 0.0
    for q in range(m):
        x = close[rows[q]] - base
        nxt = total + x
        if abs(total) >= abs(x):
            comp += (total - nxt) + x
        else:
            comp += (x - nxt) + total
        total = nxt
        hi[q + 1] = total
        lo_sum[q + 1] = comp
    return m, base


@njit(cache=True)
def _cross_marks(rows, m, base, hi, lo_sum, f, s, entries, exits):
    """Mark the bars where SMA(f) crosses above (``entries``) / below (``exits``) SMA(s):
    above now, not above on the previous bar, both defined; within the tie tolerance of
    the other SMA is a tie."""
    was_above = False
    was_below = False
    for q in range(s - 1, m):
        a = q + 1
        fast_sma = ((hi[a] - hi[a - f]) + (lo_sum[a] - lo_sum[a - f])) / f + base
        slow_sma = ((hi[a] - hi[a - s]) + (lo_sum[a] - lo_sum[a - s])) / s + base
        above = fast_sma - slow_sma > SMA_TIE_TOLERANCE * abs(slow_sma)
        below = slow_sma - fast_sma > SMA_TIE_TOLERANCE * abs(fast_sma)
        if q >= s:  # both SMAs defined on the previous bar too
            if above and not was_above:
                entries[rows[q]] = True
            if below and not was_below:
                exits[rows[q]] = True
        was_above = above
        was_below = below


@njit(cache=True)
def sma_cross_marks(c, f, s, entries, exits):
    """The crosses :func:`sweep_sma_cross` trades for one pair, for every symbol (row of
    the ``(N, T)`` closes), into the ``(N, T)`` bool arrays ``entries``/``exits``."""
    n_sym, n = c.shape
    rows = np.empty(n, dtype=np.int64)
    hi = np.empty(n + 1)
    lo_sum = np.empty(n + 1)
    for j in range(n_sym):
        m, base = _prefix_sums(c[j], rows, hi, lo_sum)
        _cross_marks(rows, m, base, hi, lo_sum, f, s, entries[j], exits[j])


# --- result columns -----------------------------------------------------------------------------


@njit(cache=True, error_model="numpy")
def curve_columns(equity, gross, exposure_out, drawdown_out):
    """Per date: ``exposure = gross / equity`` (NaN unless equity > 0) and ``drawdown =
    equity / running peak - 1`` — the arithmetic of the NumPy expressions, in one pass."""
    peak = equity[0]
    for t in range(equity.shape[0]):
        e = equity[t]
        # np.maximum.accumulate: a NaN, once met, is the peak from then on.
        if peak == peak and (e > peak or e != e):
            peak = e
        exposure_out[t] = gross[t] / e if e > 0.0 else np.nan
        drawdown_out[t] = e / peak - 1.0


# trade_columns output rows
C_SYMBOL, C_LONG, C_ENTRY_DAY, C_EXIT_DAY, C_BARS, C_REASON = range(6)
(
    X_ENTRY_PRICE, X_EXIT_PRICE, X_SHARES, X_PNL, X_RETURN_PCT, X_FEES, X_EXIT_DAY, X_BARS,
) = range(8)  # fmt: skip
TRADE_INT_COLUMNS, TRADE_FLOAT_COLUMNS = 6, 8


@njit(cache=True, error_model="numpy")
def trade_columns(trade_ints, trade_floats, rank, day_numbers, int_out, float_out, open_out):
    """The trade list as columns, sorted by entry date then symbol name (``rank[symbol]``;
    stable, so the kernels' order breaks ties). ``int_out[C_*]``: symbol index, 1 for a long,
    entry and exit day (days since 1970-01-01; the last date for an open trade), bars held,
    reason code - 1. ``float_out[X_*]``: prices, shares, P&L, return in % (P&L over the
    cost basis), fees, the exit day as a float (NaN while open), bars held.
    ``open_out``: still open at the end."""
    count = trade_ints.shape[0]
    n_symbols = rank.shape[0]
    last_row = day_numbers.shape[0] - 1
    key = np.empty(count, dtype=np.int64)
    ordered = True
    for i in range(count):
        key[i] = trade_ints[i, T_ENTRY_ROW] * n_symbols + rank[trade_ints[i, T_SYMBOL]]
        if i > 0 and key[i] < key[i - 1]:
            ordered = False
    order = np.arange(count) if ordered else np.argsort(key, kind="mergesort")
    for out, i in enumerate(order):
        entry_row = trade_ints[i, T_ENTRY_ROW]
        exit_row = trade_ints[i, T_EXIT_ROW]
        is_open = exit_row < 0
        if is_open:
            exit_row = last_row
        int_out[C_SYMBOL, out] = trade_ints[i, T_SYMBOL]
        int_out[C_LONG, out] = 1 if trade_ints[i, T_SIDE] > 0 else 0
        int_out[C_ENTRY_DAY, out] = day_numbers[entry_row]
        int_out[C_EXIT_DAY, out] = day_numbers[exit_row]
        int_out[C_BARS, out] = exit_row - entry_row
        int_out[C_REASON, out] = trade_ints[i, T_REASON] - 1
        open_out[out] = is_open
        pnl = trade_floats[i, F_PNL]
        float_out[X_ENTRY_PRICE, out] = trade_floats[i, F_ENTRY]
        float_out[X_EXIT_PRICE, out] = trade_floats[i, F_EXIT]
        float_out[X_SHARES, out] = trade_floats[i, F_SHARES]
        float_out[X_PNL, out] = pnl
        float_out[X_RETURN_PCT, out] = pnl / trade_floats[i, F_BASIS] * 100.0
        float_out[X_FEES, out] = trade_floats[i, F_FEES]
        float_out[X_EXIT_DAY, out] = np.nan if is_open else float(day_numbers[exit_row])
        float_out[X_BARS, out] = exit_row - entry_row
