"""listing sources: provenance and external keys for imports

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 13:58:00

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0006'
down_revision = '0005'
branch_labels = None
depends_on = None


def upgrade():
    # A new table only: `listings` is not rebuilt, so its triggers stay as they are.
    op.create_table(
        'listing_sources',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('listing_id', sa.Integer(), nullable=False),
        sa.Column('source', sa.String(length=40), nullable=False),
        sa.Column('source_id', sa.String(length=80), nullable=False),
        sa.Column('file', sa.String(length=200), nullable=True),
        sa.Column('as_of', sa.Date(), nullable=True),
        sa.Column('data', sa.JSON(), nullable=False),
        sa.Column('first_seen_at', sa.DateTime(), nullable=False),
        sa.Column('last_seen_at', sa.DateTime(), nullable=False),
        sa.Column('deactivated_on', sa.Date(), nullable=True),
        sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('id'),
        sa.UniqueConstraint('source', 'source_id', name='uq_listing_sources_key'),
    )
    op.create_index('ix_listing_sources_listing', 'listing_sources', ['listing_id'], unique=False)


def downgrade():
    op.drop_index('ix_listing_sources_listing', table_name='listing_sources')
    op.drop_table('listing_sources')
