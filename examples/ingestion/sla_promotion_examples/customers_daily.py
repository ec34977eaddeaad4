"""Daily customers load: the CRM's full export (CSV) merged into the ``dim_customers`` table in SQLite.

The export holds every customer (2,000), some of them twice (an older and a newer version: 20 rows),
and a handful of known defects: 20 customers without an email address (1 %, reported as a
*warning*, the data is still usable) and one row with an unknown country code (rejected). The job
keeps the newest version of each customer (type-1 dimension), records the rejected row and checks
the result against the previous load. Its runtime is steady: a daily job that gets promoted with a
data-quality warning on record.

Run: ``python -m sla_promotion_examples.customers_daily``.
"""

from __future__ import annotations

import random
import sys
from contextlib import closing
from datetime import UTC, datetime, timedelta

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

JOB = "customers_daily"
CUSTOMERS = 2000
DUPLICATES = 20
MISSING_EMAILS = 20
PAGE_SIZE = 255
COUNTRIES = ("DE", "FR", "NL", "GB", "US", "ES", "IT", "PL")
FIELDS = ("customer_id", "name", "email", "country", "updated_at")
#: Share of customers without an email above which the load fails instead of warning.
MAX_MISSING_EMAIL_SHARE = 0.02
#: Largest change of the customer count between two loads that is still plausible.
MAX_COUNT_CHANGE = 0.5


def generate_export(run_no: int, now: datetime) -> list[dict[str, str]]:
    """The CRM export as of ``now``: the same content for the same run number (seeded)."""
    rng = random.Random(f"{JOB}:{run_no}")
    rows = []
    for number in range(1, CUSTOMERS + 1):
        updated_at = now - timedelta(minutes=rng.uniform(5, 60 * 24 * 30))
        rows.append(
            {
                "customer_id": f"cus-{number:05d}",
                "name": f"Customer {number}",
                "email": f"customer{number}@example.com",
                "country": rng.choice(COUNTRIES),
                "updated_at": updated_at.isoformat(timespec="seconds"),
            }
        )
    # The newest change of the day: the export is taken a few minutes after it.
    rows[rng.randrange(CUSTOMERS)]["updated_at"] = (now - timedelta(minutes=5)).isoformat(timespec="seconds")
    for row in rng.sample(rows, MISSING_EMAILS):
        row["email"] = ""
    older = []
    for row in rng.sample(rows, DUPLICATES):
        stale = datetime.fromisoformat(row["updated_at"]) - timedelta(days=rng.randint(31, 400))
        older.append({**row, "name": row["name"].upper(), "updated_at": stale.isoformat(timespec="seconds")})
    rows[rng.randrange(CUSTOMERS)]["country"] = "XX"
    export = rows + older
    rng.shuffle(export)
    return export


def main() -> int:
    setup_logging()
    folder = data_dir(JOB)
    database = folder / "warehouse.db"
    run_no = start_run(database)
    now = datetime.now(UTC)

    source = generate_export(run_no, now)
    fetched = [row for page in fetch_pages(source, PAGE_SIZE) for row in page]
    landing = write_csv(folder / "landing" / f"customers_{now:%Y%m%d}_{run_no:04d}.csv", fetched, FIELDS)
    log.info("run %s: landed %s export rows in %s", run_no, len(fetched), landing.name)

    rows = read_csv(landing)
    rejected = [row for row in rows if row["country"] not in COUNTRIES]
    newest: dict[str, dict[str, str]] = {}
    for row in rows:
        if row["country"] not in COUNTRIES:
            continue
        kept = newest.get(row["customer_id"])
        if kept is None or row["updated_at"] > kept["updated_at"]:
            newest[row["customer_id"]] = row

    with closing(connect(database)) as connection, connection:
        connection.execute(
            "CREATE TABLE IF NOT EXISTS dim_customers (customer_id TEXT PRIMARY KEY, name TEXT NOT NULL,"
            " email TEXT, country TEXT NOT NULL, updated_at TEXT NOT NULL, run_no INTEGER)"
        )
        connection.execute(
            "CREATE TABLE IF NOT EXISTS customers_rejected (customer_id TEXT, reason TEXT, run_no INTEGER)"
        )
        previous = connection.execute(
            "SELECT rows_loaded FROM load_log WHERE run_no < ? AND finished_at IS NOT NULL"
            " ORDER BY run_no DESC LIMIT 1",
            (run_no,),
        ).fetchone()
        connection.executemany(
            "INSERT INTO dim_customers VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT(customer_id) DO UPDATE SET"
            " name=excluded.name, email=excluded.email, country=excluded.country,"
            " updated_at=excluded.updated_at, run_no=excluded.run_no"
            " WHERE excluded.updated_at >= dim_customers.updated_at",
            [
                (
                    row["customer_id"],
                    row["name"],
                    row["email"] or None,
                    row["country"],
                    row["updated_at"],
                    run_no,
                )
                for row in newest.values()
            ],
        )
        connection.executemany(
            "INSERT INTO customers_rejected VALUES (?, ?, ?)",
            [(row["customer_id"], f"unknown country code {row['country']!r}", run_no) for row in rejected],
        )
        total, distinct, without_email, bad_country, watermark = connection.execute(
            "SELECT count(*), count(DISTINCT customer_id), sum(email IS NULL),"
            f" sum(country NOT IN ({','.join('?' * len(COUNTRIES))})), max(updated_at)"
            " FROM dim_customers WHERE run_no = ?",
            (*COUNTRIES, run_no),
        ).fetchone()
        connection.execute(
            "UPDATE load_log SET mode = 'full_export', rows_read = ?, rows_loaded = ?, rows_rejected = ?,"
            " finished_at = ? WHERE run_no = ?",
            (len(rows), total, len(rejected), datetime.now(UTC).isoformat(), run_no),
        )

    checks = Checks()
    checks.expect("customer_id_unique", distinct == total, f"{distinct} distinct ids in {total} rows")
    missing_share = (without_email or 0) / total if total else 1.0
    checks.add(
        "email_present",
        "passed"
        if not without_email
        else "warning"
        if missing_share <= MAX_MISSING_EMAIL_SHARE
        else "failed",
        f"{without_email or 0} of {total} customers ({missing_share:.1%}) have no email",
    )
    checks.expect(
        "country_code_valid",
        not bad_country,
        f"{bad_country or 0} loaded rows with an unknown country; {len(rejected)} export rows rejected",
    )
    if previous is None:
        checks.add("row_count_stable", "passed", f"first load: {total} customers")
    else:
        change = abs(total - previous[0]) / previous[0] if previous[0] else 1.0
        checks.expect(
            "row_count_stable",
            change <= MAX_COUNT_CHANGE,
            f"{total} customers, previous load {previous[0]} ({change:.1%} change)",
        )
    return finish(
        checks=checks,
        records_processed=len(rows),
        records_failed=len(rejected),
        data_watermark=datetime.fromisoformat(watermark) if watermark else None,
        extra={"run_no": run_no, "landing_file": landing.name, "customers": total},
    )


if __name__ == "__main__":
    sys.exit(main())
