"""listings.on_curated_list

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-26 11:45:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade():
    # A plain ADD COLUMN, not a batch rebuild: rebuilding `listings` on SQLite would drop the
    # triggers that keep listing_rtree in step (see 0001).
    op.add_column(
        'listings',
        sa.Column('on_curated_list', sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    # Backfill; from here on the ORM keeps it in step (models._keep_search_copies).
    op.execute(
        """UPDATE listings SET on_curated_list = EXISTS (
             SELECT 1 FROM reliability_flags f
             WHERE f.listing_id = listings.id AND f.type = 'curated_list')"""
    )


def downgrade():
    with op.batch_alter_table('listings', schema=None) as batch_op:
        batch_op.drop_column('on_curated_list')
    # The batch rebuild above dropped the R*Tree triggers on SQLite: put them back.
    if op.get_bind().dialect.name == 'sqlite':
        from directory.spatial import SQLITE_RTREE_DDL

        for statement in SQLITE_RTREE_DDL:
            op.execute(statement)
