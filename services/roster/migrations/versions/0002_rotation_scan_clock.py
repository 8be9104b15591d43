"""the rotation scan's clock: when the last accepted scan ran, a confirmed jump, the announcement epoch

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
    # A service started without migrate-on-start creates missing tables itself: the table may be there.
    if sa.inspect(op.get_bind()).has_table('rotation_scan_clock'):
        return
    op.create_table('rotation_scan_clock',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('last_scan_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('jump_from', sa.Date(), nullable=True),
    sa.Column('epoch', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )


def downgrade() -> None:
    op.drop_table('rotation_scan_clock')
