"""A party's liaison: a person on the roster to receive humanitarian notifications, never a member

Revision ID: 0005
Revises: 0004
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = '0005'
down_revision: str | None = '0004'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    if 'liaison' not in {c['name'] for c in inspector.get_columns('person')}:
        with op.batch_alter_table('person', schema=None) as batch_op:
            batch_op.add_column(sa.Column('liaison', sa.Boolean(), nullable=False, server_default=sa.false()))


def downgrade() -> None:
    with op.batch_alter_table('person', schema=None) as batch_op:
        batch_op.drop_column('liaison')
