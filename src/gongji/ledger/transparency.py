"""Transparency pages and their API (公开账目): public accounts, their entries over time, the checkpoint history.

Public, no login. Only accounts marked `public` appear (a campaign's funds, a
mutual-aid plan's pool); any other code is "not found", so a member's own
account never shows that it exists. What is shown is what the public log
already carries — dates, kinds, memos, references, amounts — and never who
posted an entry. Amounts are shown on the account's normal side: for a fund
(a liability) money in is a credit, and its balance is the money it holds.

A member's own charge in a bulk entry is proved by
`/api/ledger/entries/{seq}/lines/{line_no}/receipt`: the line's path to the
entry's `lines_root`, and the entry's receipt as `/api/ledger/receipts/{i}`
gives it (checked by `tools/verify_receipt.py` and the 查验凭证 page).
Pages are Chinese by default, English with `?lang=en` (gettext, as the calculator).
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterator
from typing import Annotated, Any
from urllib.parse import quote, urlencode

from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as FastApiPath
from fastapi.responses import HTMLResponse, Response, StreamingResponse
from pydantic import BaseModel, Field

from gongji.api.auth import PUBLIC, access
from gongji.api.deps import AppContext, get_context
from gongji.api.problems import problem_responses
from gongji.core.errors import NotFound
from gongji.core.money import format_yuan
from gongji.ledger import service
from gongji.ledger.models import Account
from gongji.rules.schemas import CHINA_TIME, Money
from gongji.web.i18n import (
    HTML_LANG,
    LANG_COOKIE,
    LANGUAGE_NAMES,
    LANGUAGES,
    N_,
    gettext_for,
    page_language,
)
from gongji.web.rendering import templates

router = APIRouter(tags=["ledger"], responses=problem_responses(404, 422))

Context = Annotated[AppContext, Depends(get_context)]
#: Account codes may hold any character but are never empty; `:path` lets one hold a slash too.
AccountCode = Annotated[str, FastApiPath(min_length=1, max_length=64, description="Account code, e.g. campaign:1")]
EntrySeq = Annotated[int, FastApiPath(ge=1, le=2**31 - 1, description="Journal entry number (seq).")]
LineNo = Annotated[int, FastApiPath(ge=0, le=2**31 - 1, description="Line number within the entry, from 0.")]
Before = Annotated[int | None, Query(ge=1, le=2**31 - 1, description="Only entries numbered below this")]
Limit = Annotated[int, Query(ge=1, le=500, description="At most this many entries")]

#: Debit-normal kinds grow with debits; the others (funds held for someone, income, equity) with credits.
DEBIT_NORMAL = ("asset", "expense")
ACCOUNT_KIND_LABELS = {
    "asset": N_("Asset"), "liability": N_("Fund held (liability)"), "income": N_("Income"),
    "expense": N_("Expense"), "equity": N_("Equity"),
}
ENTRY_KIND_LABELS = {
    "donation": N_("Donation"), "refund": N_("Refund"), "disbursement": N_("Disbursement"),
    "apportionment": N_("Apportionment"), "payout": N_("Mutual-aid payout"), "grant": N_("Charity grant"),
    "fee": N_("Platform fee"), "contribution": N_("Contribution"), "adjustment": N_("Adjustment"),
}
CSV_COLUMNS = (
    "entry_seq", "leaf_index", "posted_at", "kind", "change_fen", "change_yuan", "balance_fen", "balance_yuan",
    "memo", "reference", "refund_reason",
)
#: Spreadsheets run a cell starting with these as a formula; text cells get a leading apostrophe.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
ONE_YEAR = 365 * 24 * 3600
PAGE_SIZE = 50


def normal_sign(account: Account) -> int:
    """+1 if the account's balance is shown as its debits minus credits, −1 for the credit-normal kinds."""
    return 1 if account.kind in DEBIT_NORMAL else -1


# --- the API ----------------------------------------------------------------------------------


class AccountOut(BaseModel):
    code: str
    name: str
    kind: str = Field(description="asset, liability, income, expense or equity")
    balance: Money = Field(description="On the account's normal side: for a fund (liability), the money it holds")


class AccountEntryOut(BaseModel):
    seq: int = Field(description="The journal entry's number")
    leaf_index: int | None = Field(description="Its leaf in the log (null until sequenced, a few seconds)")
    posted_at: str = Field(description="When it was posted, UTC (ISO 8601)")
    kind: str
    memo: str
    reference: str | None
    change: Money = Field(description="What it did to the balance: positive grew it (money in for a fund)")
    balance: Money = Field(description="The balance after it")
    refund_reason: str | None = Field(description="For a refund, why (its memo)")


class AccountEntriesOut(BaseModel):
    account: AccountOut
    entries: list[AccountEntryOut] = Field(description="Newest first")
    next_before: int | None = Field(description="Pass as `before` for the next (older) page; null at the end")


class AccountDayOut(BaseModel):
    day: str = Field(description="The day in China time (UTC+8), YYYY-MM-DD")
    money_in: Money
    money_out: Money
    balance: Money = Field(description="The balance at the end of the day")
    entries: int


class LineProofOut(BaseModel):
    line_no: int
    line_count: int
    content: str = Field(description="The line's canonical content; SHA-256(0x00 || content) is its leaf hash")
    proof: list[str] = Field(description="RFC 9162 inclusion proof of the line in the entry's lines subtree, hex")
    lines_root: str = Field(description="Root of the lines subtree, hex: the entry's content carries it")


class EntryReceiptOut(BaseModel):
    """The entry's receipt, as /api/ledger/receipts/{leaf_index} gives it."""

    leaf_index: int
    content: str
    proof: list[str]
    checkpoint: str


class LineReceiptOut(BaseModel):
    """A member's charge proved: the line into the entry's lines root, the entry into a signed checkpoint."""

    entry_seq: int
    line: LineProofOut
    entry: EntryReceiptOut


def _account_out(account: Account, balance: int) -> AccountOut:
    return AccountOut(
        code=account.code, name=account.name, kind=account.kind, balance=Money.of(balance * normal_sign(account))
    )


def _entry_out(account: Account, move: service.AccountMove) -> AccountEntryOut:
    sign = normal_sign(account)
    return AccountEntryOut(
        seq=move.seq, leaf_index=move.leaf_index, posted_at=move.posted_at.isoformat(), kind=move.kind,
        memo=move.memo, reference=move.reference, change=Money.of(move.amount * sign),
        balance=Money.of(move.balance * sign), refund_reason=move.memo if move.kind == "refund" else None,
    )


@router.get("/api/ledger/accounts", response_model=list[AccountOut], **access(PUBLIC))
def list_accounts(context: Context) -> list[AccountOut]:
    """The public accounts (a campaign's funds, a plan's pool) with their balances."""
    with context.transaction() as session:
        return [_account_out(account, balance) for account, balance in service.public_accounts(session)]


class CsvResponse(Response):
    """Declares the CSV in OpenAPI; the answer itself streams (`StreamingResponse`)."""

    media_type = "text/csv; charset=utf-8"


_CSV_RESPONSE: dict[int | str, dict[str, Any]] = {
    200: {"description": "The entries, oldest first, as CSV (UTF-8 with BOM)",
          "content": {"text/csv": {"schema": {"type": "string"}}}},
}


@router.get(
    "/api/ledger/accounts/{code:path}/entries.csv", response_class=CsvResponse, responses=_CSV_RESPONSE,
    **access(PUBLIC),
)
def account_csv(code: AccountCode, context: Context) -> StreamingResponse:
    """Every entry of a public account, oldest first, with the running balance and each refund's reason.

    Columns: entry_seq, leaf_index, posted_at (UTC), kind, change_fen, change_yuan, balance_fen,
    balance_yuan, memo, reference, refund_reason; amounts on the account's normal side.
    """
    with context.transaction() as session:
        account = service.public_account(session, code)
    filename = re.sub(r"[^A-Za-z0-9._-]+", "-", account.code).strip("-") or "account"
    return StreamingResponse(
        _csv_rows(context, account), media_type=CsvResponse.media_type,
        headers={"Content-Disposition": f'attachment; filename="{filename}-entries.csv"'},
    )


def _csv_rows(context: AppContext, account: Account) -> Iterator[str]:
    """The CSV in blocks of rows, read in one transaction however many entries the account has."""
    sign = normal_sign(account)
    out = io.StringIO()
    out.write("\ufeff")  # so spreadsheet programs read the Chinese memos as UTF-8
    writer = csv.writer(out, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    with context.transaction() as session:
        for count, move in enumerate(service.account_history(session, account), start=1):
            change, balance = move.amount * sign, move.balance * sign
            writer.writerow([
                move.seq, "" if move.leaf_index is None else move.leaf_index, move.posted_at.isoformat(), move.kind,
                change, format_yuan(change, grouping=False), balance, format_yuan(balance, grouping=False),
                _cell(move.memo), _cell(move.reference or ""), _cell(move.memo) if move.kind == "refund" else "",
            ])
            if count % 1000 == 0:
                yield out.getvalue()
                out.seek(0)
                out.truncate()
    yield out.getvalue()


def _cell(text: str) -> str:
    return "'" + text if text.startswith(_FORMULA_START) else text


@router.get("/api/ledger/accounts/{code:path}/entries", response_model=AccountEntriesOut, **access(PUBLIC))
def account_entries(code: AccountCode, context: Context, before: Before = None, limit: Limit = PAGE_SIZE
                    ) -> AccountEntriesOut:
    """A public account's entries, newest first, each with the balance after it; page with `before`."""
    with context.transaction() as session:
        account = service.public_account(session, code)
        moves = service.account_moves(session, account, before=before, limit=limit)
        return AccountEntriesOut(
            account=_account_out(account, service.account_balance(session, account.code)),
            entries=[_entry_out(account, move) for move in moves],
            next_before=moves[-1].seq if len(moves) == limit else None,
        )


@router.get("/api/ledger/accounts/{code:path}/days", response_model=list[AccountDayOut], **access(PUBLIC))
def account_days(code: AccountCode, context: Context) -> list[AccountDayOut]:
    """A public account day by day (China time): money in, money out and the balance at each day's end."""
    with context.transaction() as session:
        account = service.public_account(session, code)
        return [_day_out(account, day) for day in service.account_days(session, account)]


def _day_out(account: Account, day: service.AccountDay) -> AccountDayOut:
    money_in, money_out = (day.debits, day.credits) if normal_sign(account) > 0 else (day.credits, day.debits)
    return AccountDayOut(
        day=day.day.isoformat(), money_in=Money.of(money_in), money_out=Money.of(money_out),
        balance=Money.of(day.balance * normal_sign(account)), entries=day.entries,
    )


@router.get("/api/ledger/accounts/{code:path}", response_model=AccountOut, **access(PUBLIC))
def get_account(code: AccountCode, context: Context) -> AccountOut:
    """One public account and its balance."""
    with context.transaction() as session:
        account = service.public_account(session, code)
        return _account_out(account, service.account_balance(session, account.code))


@router.get(
    "/api/ledger/entries/{seq}/lines/{line_no}/receipt", response_model=LineReceiptOut, **access(PUBLIC)
)
def line_receipt(seq: EntrySeq, line_no: LineNo, context: Context) -> LineReceiptOut:
    """A receipt for one line of a bulk entry (a member's own charge): check the line's proof against the
    `lines_root` in the entry's content, then the entry's receipt like any other."""
    with context.transaction() as session:
        receipt = service.line_inclusion_proof(session, seq, line_no)
        return LineReceiptOut(
            entry_seq=seq,
            line=LineProofOut(
                line_no=line_no, line_count=receipt.line_count, content=receipt.line_content.decode("utf-8"),
                proof=[p.hex() for p in receipt.lines_proof], lines_root=receipt.lines_root.hex(),
            ),
            entry=EntryReceiptOut(
                leaf_index=receipt.leaf_index, content=receipt.entry_content.decode("utf-8"),
                proof=[p.hex() for p in receipt.entry_proof], checkpoint=receipt.checkpoint.note,
            ),
        )


# --- the pages --------------------------------------------------------------------------------


def _render(
    request: Request, template: str, language: str, page: dict[str, Any], *, status: int = 200
) -> HTMLResponse:
    """A transparency page in `language`, its switch linking to this same page in the other language."""
    other = LANGUAGES[1 - LANGUAGES.index(language)]
    query = [(name, value) for name, value in request.query_params.multi_items() if name != "lang"]
    context = {
        "lang": language, "html_lang": HTML_LANG[language], "other_html_lang": HTML_LANG[other],
        "other_language_name": LANGUAGE_NAMES[other],
        "lang_href": quote(request.url.path, safe="/:") + "?" + urlencode([*query, ("lang", other)]),
        **page,
    }
    response = templates.TemplateResponse(request, template, context, status_code=status)
    if request.query_params.get("lang") in LANGUAGES:
        response.set_cookie(LANG_COOKIE, language, max_age=ONE_YEAR, samesite="lax")
    return response



def _shown_time(instant) -> str:
    return instant.astimezone(CHINA_TIME).strftime("%Y-%m-%d %H:%M")


def _signed_yuan(fen: int) -> str:
    return ("+" if fen > 0 else "−" if fen < 0 else "") + "¥" + format_yuan(abs(fen))


def _page_not_found(request: Request, language: str) -> HTMLResponse:
    return _render(request, "ledger_not_found.html", language, {}, status=404)


@router.get("/ledger/accounts", response_class=HTMLResponse, include_in_schema=False, **access(PUBLIC))
def accounts_page(request: Request, context: Context) -> HTMLResponse:
    """公开账户: every public account and its balance; `?lang=en` switches to English."""
    language = page_language(request)
    _ = gettext_for(language)
    with context.transaction() as session:
        rows = [
            {"code": account.code, "name": account.name, "kind": _(ACCOUNT_KIND_LABELS[account.kind]),
             "balance": "¥" + format_yuan(balance * normal_sign(account))}
            for account, balance in service.public_accounts(session)
        ]
    return _render(request, "ledger_accounts.html", language, {"accounts": rows})


@router.get("/ledger/checkpoints", response_class=HTMLResponse, include_in_schema=False, **access(PUBLIC))
def checkpoints_page(
    request: Request,
    context: Context,
    below: Annotated[int | None, Query(ge=1, le=2**62)] = None,
) -> HTMLResponse:
    """检查点历史: every signed checkpoint, newest first, with the key to check them."""
    language = page_language(request)
    with context.transaction() as session:
        found = service.checkpoints(session, below=below, limit=PAGE_SIZE)
        rows = [
            {"size": c.size, "root": c.root, "issued_at": _shown_time(c.issued_at), "note": c.note} for c in found
        ]
    return _render(request, "ledger_checkpoints.html", language, {
        "checkpoints": rows,
        "verifier_key": context.signer.verifier_key,
        "older": found[-1].size if len(found) == PAGE_SIZE else None,
    })


@router.get("/ledger/accounts/{code:path}", response_class=HTMLResponse, include_in_schema=False, **access(PUBLIC))
def account_page(
    request: Request, code: str, context: Context, before: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None
) -> HTMLResponse:
    """One public account: its balance, a chart of its days, its entries (newest first) and the CSV export."""
    language = page_language(request)
    _ = gettext_for(language)
    with context.transaction() as session:
        try:
            account = service.public_account(session, code)
        except NotFound:
            return _page_not_found(request, language)
        sign = normal_sign(account)
        balance = service.account_balance(session, account.code)
        moves = service.account_moves(session, account, before=before, limit=PAGE_SIZE)
        days = [_day_out(account, day) for day in service.account_days(session, account)]
    entries = [
        {
            "seq": move.seq, "leaf_index": move.leaf_index, "posted_at": _shown_time(move.posted_at),
            "kind": _(ENTRY_KIND_LABELS.get(move.kind, move.kind)), "is_refund": move.kind == "refund",
            "memo": move.memo, "reference": move.reference or "", "change": _signed_yuan(move.amount * sign),
            "direction": "in" if move.amount * sign > 0 else "out", "balance": "¥" + format_yuan(move.balance * sign),
        }
        for move in moves
    ]
    chart = {
        "days": [day.day for day in days],
        "money_in": [day.money_in.fen / 100 for day in days],
        "money_out": [-day.money_out.fen / 100 for day in days],
        "balance": [day.balance.fen / 100 for day in days],
        "labels": {"in": _("Money in"), "out": _("Money out"), "balance": _("Balance")},
    }
    return _render(request, "ledger_account.html", language, {
        "account": {"code": account.code, "name": account.name, "kind": _(ACCOUNT_KIND_LABELS[account.kind]),
                    "balance": "¥" + format_yuan(balance * sign)},
        "entries": entries,
        "older": moves[-1].seq if len(moves) == PAGE_SIZE else None,
        "newest": before is None,
        "chart_json": json.dumps(chart, ensure_ascii=False),
        "csv_href": f"/api/ledger/accounts/{_quoted(account.code)}/entries.csv",
    })


def _quoted(code: str) -> str:
    return quote(code, safe=":")
