"""Paper-trading services: the accounts of paper pipelines, their orders, fills, positions
and equity. One implementation for the CLI, the API and the dashboard."""

from __future__ import annotations

from breadthflow.services.context import AppContext
from breadthflow.store.paper import Account, EquityPoint, Fill, Order, PaperRepository, Position


def accounts(ctx: AppContext, name: str | None = None) -> list[Account]:
    """One account (``name``: the paper pipeline's), or all of them."""
    repo = PaperRepository(ctx.db)
    return [repo.account(name)] if name else repo.accounts()


def orders(
    ctx: AppContext, name: str | None = None, status: str | None = None, limit: int = 100
) -> list[Order]:
    return PaperRepository(ctx.db).orders(name, status, limit)


def fills(ctx: AppContext, name: str | None = None, limit: int = 1000) -> list[Fill]:
    return PaperRepository(ctx.db).fills(name, limit)


def positions(ctx: AppContext, name: str | None = None) -> list[Position]:
    return PaperRepository(ctx.db).positions(name)


def equity(ctx: AppContext, name: str) -> list[EquityPoint]:
    return PaperRepository(ctx.db).equity(name)
