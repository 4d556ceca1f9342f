"""the volunteers' call list: claims, call attempts, listings.confirmed_nearby

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01 16:40:00

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0007'
down_revision = '0006'
branch_labels = None
depends_on = None


def upgrade():
    # A plain ADD COLUMN, not a batch rebuild: `listings` keeps its triggers (see 0004).
    op.add_column(
        'listings',
        sa.Column('confirmed_nearby', sa.Boolean(), server_default=sa.false(), nullable=False),
    )
    # The call list's order plus every column its filters read: pages and counts are
    # read from the index alone.
    filtered = ['status', 'verified_on', 'kind', 'makes_ldn']
    op.create_index(
        'ix_listings_call_order', 'listings', ['confirmed_nearby', 'id', *filtered], unique=False
    )
    op.create_index(
        'ix_listings_call_order_region',
        'listings',
        ['region', 'confirmed_nearby', 'id', *filtered],
        unique=False,
    )
    op.create_table(
        'call_claims',
        sa.Column('listing_id', sa.Integer(), nullable=False),
        sa.Column('moderator_id', sa.Integer(), nullable=False),
        sa.Column('claimed_at', sa.DateTime(), nullable=False),
        sa.Column('expires_at', sa.DateTime(), nullable=False),
        sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['moderator_id'], ['users.id'], ondelete='CASCADE'),
        sa.PrimaryKeyConstraint('listing_id'),
    )
    op.create_index('ix_call_claims_expires_at', 'call_claims', ['expires_at'], unique=False)
    op.create_table(
        'call_attempts',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('listing_id', sa.Integer(), nullable=False),
        sa.Column('moderator_id', sa.Integer(), nullable=True),
        sa.Column('at', sa.DateTime(), nullable=False),
        sa.Column(
            'outcome',
            sa.Enum(
                'confirmed',
                'no_answer',
                'no_ldn',
                'closed',
                name='calloutcome',
                native_enum=False,
                length=16,
            ),
            nullable=False,
        ),
        sa.Column('note', sa.String(length=500), nullable=True),
        sa.ForeignKeyConstraint(['listing_id'], ['listings.id'], ondelete='CASCADE'),
        sa.ForeignKeyConstraint(['moderator_id'], ['users.id']),
        sa.PrimaryKeyConstraint('id'),
    )
    op.create_index(
        'ix_call_attempts_listing', 'call_attempts', ['listing_id', 'at'], unique=False
    )
    op.create_index(
        'ix_call_attempts_outcome_at', 'call_attempts', ['outcome', 'at'], unique=False
    )
    # Existing confirmed pharmacies mark their neighbours (the rule is
    # directory.moderation.calls.is_confirmed_pharmacy; NEARBY_KM is 25 miles). Few
    # pharmacies are confirmed, so one pass per pharmacy over its box is cheap.
    conn = op.get_bind()
    from directory.geomath import box_around, distance_km
    from directory.moderation.calls import NEARBY_KM

    pharmacies = conn.execute(
        sa.text(
            "SELECT lat, lon FROM listings WHERE kind = 'pharmacy' AND makes_ldn = :yes"
            " AND status != 'closed' AND verified_on IS NOT NULL AND lat IS NOT NULL"
        ),
        {"yes": True},
    ).all()
    for lat, lon in pharmacies:
        box = box_around(lat, lon, NEARBY_KM)
        rows = conn.execute(
            sa.text(
                "SELECT id, lat, lon FROM listings WHERE lat BETWEEN :s AND :n"
                " AND lon BETWEEN :w AND :e"
            ),
            {"s": box.south, "n": box.north, "w": min(box.west, box.east), "e": max(box.west, box.east)},
        ).all()
        near = [i for i, a, b in rows if distance_km(lat, lon, a, b) <= NEARBY_KM]
        if near:
            conn.execute(
                sa.text("UPDATE listings SET confirmed_nearby = :yes WHERE id IN :ids").bindparams(
                    sa.bindparam('ids', expanding=True)
                ),
                {"yes": True, "ids": near},
            )


def downgrade():
    op.drop_index('ix_call_attempts_outcome_at', table_name='call_attempts')
    op.drop_index('ix_call_attempts_listing', table_name='call_attempts')
    op.drop_table('call_attempts')
    op.drop_index('ix_call_claims_expires_at', table_name='call_claims')
    op.drop_table('call_claims')
    op.drop_index('ix_listings_call_order_region', table_name='listings')
    op.drop_index('ix_listings_call_order', table_name='listings')
    # SQLite (3.35+) drops an unindexed column in place. A batch rebuild would drop the old
    # `listings` with foreign keys on, and that cascades: every listing_regions row would go.
    if op.get_bind().dialect.name == 'sqlite':
        op.execute('ALTER TABLE listings DROP COLUMN confirmed_nearby')
    else:
        op.drop_column('listings', 'confirmed_nearby')
