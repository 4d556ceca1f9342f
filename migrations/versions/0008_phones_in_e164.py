"""phones in E.164: listings, pending submissions and the imports' remembered values

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01 16:30:00

Data only, no schema change. Every phone becomes E.164 (+12055550100), the one form the app
stores and compares; pages format it for reading. A number that doesn't parse is left as it
was (a moderator sees it as written). The listings' phone_digits copy is kept by its trigger
and gives the same digits as before for US numbers (the leading 1 dropped); a foreign number
written nationally (020 ...) now has its country code's digits (44 20 ...), like the same
number written internationally always had.

The downgrade keeps E.164: the old code shows it and dials it as written, and the format each
number had before is not recorded anywhere, so there is nothing true to go back to.
"""

import phonenumbers
import sqlalchemy as sa
from alembic import op

# revision identifiers, used by Alembic.
revision = '0008'
down_revision = '0007'
branch_labels = None
depends_on = None

BATCH = 1000


def _e164(raw, country):
    # The rule of directory.validation.normalise_phone, written out here so this migration
    # means the same thing after that module changes.
    if not raw or not str(raw).strip():
        return raw
    try:
        number = phonenumbers.parse(str(raw), country or 'US')
    except phonenumbers.NumberParseException:
        return raw
    if not phonenumbers.is_possible_number(number):
        return raw
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def _listings(conn):
    listings = sa.table(
        'listings', sa.column('id', sa.Integer), sa.column('phone', sa.String),
        sa.column('country', sa.String),
    )
    last = 0
    while True:
        rows = conn.execute(
            sa.select(listings.c.id, listings.c.phone, listings.c.country)
            .where(listings.c.id > last, listings.c.phone.is_not(None))
            .order_by(listings.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        last = rows[-1].id
        changes = [
            {'i': r.id, 'p': new}
            for r in rows
            if (new := _e164(r.phone, r.country)) != r.phone
        ]
        if changes:
            conn.execute(
                listings.update()
                .where(listings.c.id == sa.bindparam('i'))
                .values(phone=sa.bindparam('p')),
                changes,
            )


def _json_rows(conn, table_name, column, where=None):
    """Rows whose JSON `column` holds a phone (and a country), rewritten in E.164."""
    table = sa.table(table_name, sa.column('id', sa.Integer), sa.column(column, sa.JSON))
    if where is not None:
        table.append_column(sa.column(where[0], sa.String))
    last = 0
    while True:
        stmt = sa.select(table.c.id, table.c[column]).where(table.c.id > last)
        if where is not None:
            stmt = stmt.where(table.c[where[0]] == where[1])
        rows = conn.execute(stmt.order_by(table.c.id).limit(BATCH)).all()
        if not rows:
            return
        last = rows[-1].id
        for ident, data in rows:
            if not isinstance(data, dict) or not data.get('phone'):
                continue
            new = _e164(data['phone'], data.get('country'))
            if new != data['phone']:
                conn.execute(
                    table.update().where(table.c.id == ident).values({column: {**data, 'phone': new}})
                )


def upgrade():
    conn = op.get_bind()
    _listings(conn)
    # Pending only: a decided submission is history, kept as it was sent.
    _json_rows(conn, 'submissions', 'data', where=('status', 'pending'))
    # The imports compare a listing's phone with the value they last wrote: both change
    # together, so a registry re-import doesn't take the new form for a moderator's edit.
    _json_rows(conn, 'listing_sources', 'data')


def downgrade():
    pass  # E.164 is kept: see the module's docstring.
