"""PostGIS point for search on PostgreSQL; data_version for HTTP caching

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 16:40:00

"""
from alembic import op
import sqlalchemy as sa


# revision identifiers, used by Alembic.
revision = '0011'
down_revision = '0010'
branch_labels = None
depends_on = None


def upgrade():
    # One row that every change to public data raises: ETags are built from it
    # (directory/dataversion.py).
    op.create_table(
        'data_version',
        sa.Column('id', sa.Integer(), nullable=False),
        sa.Column('version', sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint('id'),
    )
    op.execute("INSERT INTO data_version (id, version) VALUES (1, 1)")
    # SQLite keeps its R*Tree (0001); nothing changes there. On PostgreSQL a generated column
    # (the database computes it from lat/lon on every write) and its GiST index: see
    # directory/spatial.py.
    if op.get_bind().dialect.name != 'postgresql':
        return
    from directory.spatial import PG_POINT_DDL

    for statement in PG_POINT_DDL:
        op.execute(statement)


def downgrade():
    op.drop_table('data_version')
    # The extension stays: other databases' objects or another schema may use it.
    if op.get_bind().dialect.name != 'postgresql':
        return
    from directory.spatial import PG_POINT_DROP_DDL

    for statement in PG_POINT_DROP_DDL:
        op.execute(statement)
