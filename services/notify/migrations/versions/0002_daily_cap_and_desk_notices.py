"""daily cap, daily summaries and the desk's notices

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('daily_sent',
    sa.Column('person_id', sa.Uuid(), nullable=False),
    sa.Column('day', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('person_id', 'day')
    )
    op.create_table('desk_notice',
    sa.Column('key', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
    sa.Column('line', sqlmodel.sql.sqltypes.AutoString(length=400), nullable=False),
    sa.Column('count', sa.Integer(), nullable=False),
    sa.Column('depth', sa.Integer(), nullable=False),
    sa.Column('first_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('last_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('told_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('key')
    )
    with op.batch_alter_table('desk_notice', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_desk_notice_region'), ['region'], unique=False)
        batch_op.create_index(batch_op.f('ix_desk_notice_told_at'), ['told_at'], unique=False)
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.add_column(sa.Column('depth', sa.Integer(), nullable=False, server_default='0'))
        batch_op.add_column(sa.Column('folded_on', sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_column('folded_on')
        batch_op.drop_column('depth')
    with op.batch_alter_table('desk_notice', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_desk_notice_told_at'))
        batch_op.drop_index(batch_op.f('ix_desk_notice_region'))
    op.drop_table('desk_notice')
    op.drop_table('daily_sent')
