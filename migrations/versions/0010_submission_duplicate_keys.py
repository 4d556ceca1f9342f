"""submissions: the keys duplicate detection looks up (NPI, phone digits, name key, point)

Revision ID: 0010
Revises: 0009
Create Date: 2026-12-01 16:40:00

"""
import json

import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0010'
down_revision = '0009'
branch_labels = None
depends_on = None

BATCH = 1000


def upgrade():
    # Plain ADD COLUMN on both databases: `submissions` is not rebuilt, and no trigger names it.
    op.add_column('submissions', sa.Column('npi', sa.String(length=10), nullable=True))
    op.add_column('submissions', sa.Column('phone_digits', sa.String(length=40), nullable=True))
    op.add_column('submissions', sa.Column('name_key', sa.Text(), nullable=True))
    op.add_column('submissions', sa.Column('lat', sa.Float(), nullable=True))
    op.add_column('submissions', sa.Column('lon', sa.Float(), nullable=True))
    _backfill()
    # Status in every lookup's index: SQLite, without statistics, otherwise answers
    # "content_hash = ? AND status = ?" (and the NPI and phone lookups) through the status-first
    # box index below, reading every pending row. See the model.
    op.drop_index('ix_submissions_content_hash', table_name='submissions')
    op.create_index(
        'ix_submissions_content_hash', 'submissions', ['content_hash', 'status'], unique=False
    )
    op.create_index('ix_submissions_npi', 'submissions', ['npi', 'status'], unique=False)
    op.create_index(
        'ix_submissions_phone_digits', 'submissions', ['phone_digits', 'status'], unique=False
    )
    op.create_index(
        'ix_submissions_status_lat_lon', 'submissions', ['status', 'lat', 'lon'], unique=False
    )


def _backfill():
    # The same rule the app writes them by (directory.duplicates.submission_keys), applied to
    # every existing submission's JSON, a batch at a time by id.
    from directory.duplicates import submission_keys

    bind = op.get_bind()
    table = sa.table(
        'submissions',
        sa.column('id', sa.Integer),
        sa.column('data', sa.JSON),
        sa.column('place', sa.JSON),
        sa.column('npi', sa.String),
        sa.column('phone_digits', sa.String),
        sa.column('name_key', sa.Text),
        sa.column('lat', sa.Float),
        sa.column('lon', sa.Float),
    )
    update = (
        table.update()
        .where(table.c.id == sa.bindparam('sub_id'))
        .values(
            npi=sa.bindparam('npi'),
            phone_digits=sa.bindparam('phone_digits'),
            name_key=sa.bindparam('name_key'),
            lat=sa.bindparam('lat'),
            lon=sa.bindparam('lon'),
        )
    )
    last = 0
    while True:
        rows = bind.execute(
            sa.select(table.c.id, table.c.data, table.c.place)
            .where(table.c.id > last)
            .order_by(table.c.id)
            .limit(BATCH)
        ).all()
        if not rows:
            return
        params = []
        for sub_id, data, place in rows:
            # JSON comes back parsed from PostgreSQL and from SQLite through sa.JSON; a
            # string would be a hand-written row.
            data = json.loads(data) if isinstance(data, str) else data
            place = json.loads(place) if isinstance(place, str) else place
            params.append({'sub_id': sub_id, **submission_keys(data or {}, place)})
        bind.execute(update, params)
        last = rows[-1][0]


def downgrade():
    op.drop_index('ix_submissions_status_lat_lon', table_name='submissions')
    op.drop_index('ix_submissions_phone_digits', table_name='submissions')
    op.drop_index('ix_submissions_npi', table_name='submissions')
    op.drop_index('ix_submissions_content_hash', table_name='submissions')
    op.create_index('ix_submissions_content_hash', 'submissions', ['content_hash'], unique=False)
    # Plain DROP COLUMN (SQLite 3.35+), not batch mode: a rebuilt `submissions` would have to
    # be dropped while audit_log's foreign keys point at it.
    for column in ('lon', 'lat', 'name_key', 'phone_digits', 'npi'):
        op.execute(f'ALTER TABLE submissions DROP COLUMN {column}')
