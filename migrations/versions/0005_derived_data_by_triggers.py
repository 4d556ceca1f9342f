"""derived data kept by triggers

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 13:10:00

"""
from alembic import op


# revision identifiers, used by Alembic.
revision = '0005'
down_revision = '0004'
branch_labels = None
depends_on = None


def upgrade():
    # Triggers only, no table changes: nothing is rebuilt in batch mode on SQLite, so the
    # R*Tree triggers (0001) stay as they are. See directory/derived.py.
    from directory.derived import backfill_ddl, trigger_ddl

    dialect = op.get_bind().dialect.name
    for statement in trigger_ddl(dialect) + backfill_ddl(dialect):
        op.execute(statement)


def downgrade():
    # Back to the copies kept by the application (0004's state): drop the triggers only; the
    # stored values stay as they are, in step.
    from directory.derived import drop_trigger_ddl

    for statement in drop_trigger_ddl(op.get_bind().dialect.name):
        op.execute(statement)
