"""Hourly orders load: the last hour's orders from the shop's export (CSV) into the SQLite warehouse.

Each run receives one hour of orders (1,200 rows, one of them with a negative amount, which the
validation rejects), lands them as a CSV file, loads the valid rows into ``orders`` (idempotent
upsert on ``order_id``), keeps the rejected row in ``orders_rejected`` and checks the result. Its
runtime is steady from run to run: the example that gets promoted.

Run: ``python -m sla_promotion_examples.orders_hourly``.
"""

from __future__ import annotations

import random
import sys
from contextlib import closing
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation

from sla_promotion_examples._common import (
    Checks,
    connect,
    data_dir,
    fetch_pages,
    finish,
    log,
    read_csv,
    setup_logging,
    start_run,
    write_csv,
)

JOB = "orders_hourly"
BATCH_ROWS = 1200
PAGE_SIZE = 150
CURRENCIES = ("EUR", "USD", "GBP")
FIELDS = ("order_id", "customer_id", "amount", "currency", "ordered_at")


def generate_batch(run_no: int, now: datetime) -> list[dict[str, str]]:
    """One hour of orders, the same for the same run number (seeded), ending just before ``now``."""
    rng = random.Random(f"{JOB}:{run_no}")
    hour_start = now - timedelta(hours=1)
    rows = []
    for index in range(BATCH_ROWS):
        ordered_at = hour_start + timedelta(seconds=rng.uniform(0, 3540))
        rows.append(
            {
                "order_id": f"ord-{run_no:06d}-{index:05d}",
                "customer_id": f"cus-{rng.randint(1, 2000):05d}",
                "amount": f"{rng.uniform(3, 400):.2f}",
                "currency": rng.choice(CURRENCIES),
                "ordered_at": ordered_at.isoformat(timespec="seconds"),
            }
        )
    # The shop's export always carries the odd refund booked as a negative order: not ours to load.
    rows[rng.randrange(BATCH_ROWS)]["amount"] = "-12.50"
    return sorted(rows, key=lambda row: row["ordered_at"])


def validate(row: dict[str, str]) -> str | None:
    """Why a row cannot be loaded, or None."""
    try:
        amount = Decimal(row["amount"])
    except InvalidOperation:
        return f"amount is not a number: {row['amount']!r}"
    if amount <= 0:
        return f"amount must be positive: {amount}"
    if row["currency"] not in CURRENCIES:
        return f"unknown currency: {row['currency']!r}"
    if not row["order_id"] or not row["customer_id"]:
        return "missing key"
    return None


def main() -> int:
    setup_logging()
    folder = data_dir(JOB)
    database = folder / "warehouse.db"
    run_no = start_run(database)
    now = datetime.now(UTC)

    source = generate_batch(run_no, now)
    fetched = [row for page in fetch_pages(source, PAGE_SIZE) for row in page]
    landing = write_csv(folder / "landing" / f"orders_{run_no:06d}.csv", fetched, FIELDS)
    log.info("run %s: landed %s orders in %s", run_no, len(fetched), landing.name)

    rows = read_csv(landing)
    valid, rejected = [], []
    for row in rows:
        reason = validate(row)
        (rejected if reason else valid).append((row, reason))

    with closing(connect(database)) as connection, connection:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS orders (order_id TEXT PRIMARY KEY, customer_id TEXT NOT NULL,"
            " amount_cents INTEGER NOT NULL, currency TEXT NOT NULL, ordered_at TEXT NOT NULL, run_no INTEGER)"
        )
        connection.execute(
            "CREATE TABLE IF NOT EXISTS orders_rejected (order_id TEXT, reason TEXT, run_no INTEGER)"
        )
        connection.executemany(
            "INSERT INTO orders VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(order_id) DO UPDATE SET"
            " customer_id=excluded.customer_id, amount_cents=excluded.amount_cents,"
            " currency=excluded.currency, ordered_at=excluded.ordered_at, run_no=excluded.run_no",
            [
                (
                    row["order_id"],
                    row["customer_id"],
                    int(Decimal(row["amount"]) * 100),
                    row["currency"],
                    row["ordered_at"],
                    run_no,
                )
                for row, _ in valid
            ],
        )
        connection.executemany(
            "INSERT INTO orders_rejected VALUES (?, ?, ?)",
            [(row["order_id"], reason, run_no) for row, reason in rejected],
        )
        loaded, distinct, non_positive, currencies, newest = connection.execute(
            "SELECT count(*), count(DISTINCT order_id), sum(amount_cents <= 0),"
            " count(DISTINCT currency), max(ordered_at) FROM orders WHERE run_no = ?",
            (run_no,),
        ).fetchone()
        connection.execute(
            "UPDATE load_log SET mode = 'hourly', rows_read = ?, rows_loaded = ?, rows_rejected = ?,"
            " finished_at = ? WHERE run_no = ?",
            (len(rows), loaded, len(rejected), datetime.now(UTC).isoformat(), run_no),
        )

    checks = Checks()
    checks.expect("batch_not_empty", loaded > 0, f"{loaded} orders loaded")
    checks.expect(
        "batch_reconciles",
        loaded == len(valid) and loaded + len(rejected) == len(rows),
        f"{len(rows)} read = {loaded} loaded + {len(rejected)} rejected",
    )
    checks.expect("order_id_unique", distinct == loaded, f"{distinct} distinct ids in {loaded} rows")
    checks.expect("amount_positive", not non_positive, f"{non_positive or 0} loaded rows with amount <= 0")
    checks.expect("currency_known", currencies <= len(CURRENCIES), f"{currencies} currencies")
    watermark = datetime.fromisoformat(newest) if newest else None
    return finish(
        checks=checks,
        records_processed=len(rows),
        records_failed=len(rejected),
        data_watermark=watermark,
        extra={"run_no": run_no, "landing_file": landing.name, "rows_loaded": loaded},
    )


if __name__ == "__main__":
    sys.exit(main())
