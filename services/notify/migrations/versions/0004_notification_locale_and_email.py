"""A notification's reader language (what a summary written when it is sent is written in), and the
e-mail address it goes to when Telegram cannot reach its person

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    have = {c['name'] for c in inspector.get_columns('notification')}
    with op.batch_alter_table('notification', schema=None) as batch_op:
        if 'locale' not in have:
            batch_op.add_column(sa.Column('locale', sqlmodel.sql.sqltypes.AutoString(length=8), nullable=False,
                                          server_default='en'))
        if 'email' not in have:
            batch_op.add_column(sa.Column('email', sqlmodel.sql.sqltypes.AutoString(length=254), nullable=False,
                                          server_default=''))
        if 'emailed_at' not in have:
            batch_op.add_column(sa.Column('emailed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_column('emailed_at')
        batch_op.drop_column('email')
        batch_op.drop_column('locale')
