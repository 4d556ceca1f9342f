"""submissions: a keyed hash of the sender's address, to cap pending submissions per sender

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-01 16:45:00

"""
import sqlalchemy as sa
from alembic import op


# revision identifiers, used by Alembic.
revision = '0009'
down_revision = '0008'
branch_labels = None
depends_on = None


def upgrade():
    # A nullable column and an index: plain ALTER TABLE on both databases, no rebuild of
    # `submissions` (and `listings`, which the triggers name, is not touched).
    with op.batch_alter_table('submissions') as batch_op:
        batch_op.add_column(sa.Column('client_hash', sa.String(length=64), nullable=True))
        batch_op.create_index(
            'ix_submissions_client_status', ['client_hash', 'status'], unique=False
        )


def downgrade():
    with op.batch_alter_table('submissions') as batch_op:
        batch_op.drop_index('ix_submissions_client_status')
        batch_op.drop_column('client_hash')
