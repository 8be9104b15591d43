"""Telegram links follow the roster: invitations revoked by a newer one (or `roster revoke`), and
links held for the CMCS desk when the account's username is not the roster's

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0003'
down_revision: str | None = '0002'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    inspector = sa.inspect(op.get_bind())
    # A service started without migrate-on-start creates missing tables (not missing columns) itself.
    if 'revoked_at' not in {c['name'] for c in inspector.get_columns('registration_token')}:
        with op.batch_alter_table('registration_token', schema=None) as batch_op:
            batch_op.add_column(sa.Column('revoked_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True))
    if not inspector.has_table('telegram_link_hold'):
        op.create_table('telegram_link_hold',
        sa.Column('person_id', sa.Uuid(), nullable=False),
        sa.Column('telegram_user_id', sa.Integer(), nullable=False),
        sa.Column('telegram_username', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column('held_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(['person_id'], ['person.id'], ),
        sa.PrimaryKeyConstraint('person_id')
        )


def downgrade() -> None:
    op.drop_table('telegram_link_hold')
    with op.batch_alter_table('registration_token', schema=None) as batch_op:
        batch_op.drop_column('revoked_at')
