"""the notify store's tables

Revision ID: 0001
Revises: 
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

revision: str = '0001'
down_revision: str | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('call_agenda_item',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('occurrence', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('person_id', sa.Uuid(), nullable=False),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('added_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('call_agenda_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_call_agenda_item_occurrence'), ['occurrence'], unique=False)
        batch_op.create_index(batch_op.f('ix_call_agenda_item_region'), ['region'], unique=False)

    op.create_table('call_change',
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('original', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('moved_to', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('changed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('told_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('region', 'original')
    )
    op.create_table('call_planned',
    sa.Column('about', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('occurrence', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('about', 'kind', 'occurrence')
    )
    op.create_table('call_schedule',
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('rrule', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('first_day', sa.Date(), nullable=False),
    sa.Column('local_time', sqlmodel.sql.sqltypes.AutoString(length=5), nullable=False),
    sa.Column('timezone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('duration_minutes', sa.Integer(), nullable=False),
    sa.Column('link', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('chair_email', sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
    sa.Column('updated_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('region')
    )
    op.create_table('call_subscriber',
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('person_id', sa.Uuid(), nullable=False),
    sa.Column('since', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('region', 'person_id')
    )
    op.create_table('call_summary',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('occurrence', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('person_id', sa.Uuid(), nullable=False),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('call_summary', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_call_summary_region'), ['region'], unique=False)

    op.create_table('handover_seen',
    sa.Column('deployment_id', sa.Uuid(), nullable=False),
    sa.Column('post_id', sa.Uuid(), nullable=False),
    sa.Column('person_id', sa.Uuid(), nullable=False),
    sa.Column('note_id', sa.Uuid(), nullable=False),
    sa.Column('recorded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('deployment_id')
    )
    with op.batch_alter_table('handover_seen', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_handover_seen_post_id'), ['post_id'], unique=False)

    op.create_table('notification',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('occurrence', sqlmodel.sql.sqltypes.AutoString(length=80), nullable=False),
    sa.Column('person_id', sa.Uuid(), nullable=False),
    sa.Column('person_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('chat_id', sa.Integer(), nullable=True),
    sa.Column('timezone', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
    sa.Column('text', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('buttons', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('urgent', sa.Boolean(), nullable=False),
    sa.Column('document', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('attempts', sa.Integer(), nullable=False),
    sa.Column('escalation_level', sa.Integer(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('first_sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('sent_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('acknowledged_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('reply', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('failed_reason', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('due_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('due_action', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('kind', 'subject', 'person_id', 'occurrence')
    )
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_notification_due_at'), ['due_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_kind'), ['kind'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_state'), ['state'], unique=False)
        batch_op.create_index(batch_op.f('ix_notification_subject'), ['subject'], unique=False)

    op.create_table('outbox',
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('subject', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('payload', sa.LargeBinary(), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('published_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('event_id')
    )
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_outbox_published_at'), ['published_at'], unique=False)

    op.create_table('processed_event',
    sa.Column('consumer', sqlmodel.sql.sqltypes.AutoString(length=120), nullable=False),
    sa.Column('event_id', sa.Uuid(), nullable=False),
    sa.Column('processed_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('consumer', 'event_id')
    )
    op.create_table('succession',
    sa.Column('outgoing_deployment_id', sa.Uuid(), nullable=False),
    sa.Column('incoming_person_id', sa.Uuid(), nullable=False),
    sa.Column('incoming_deployment_id', sa.Uuid(), nullable=False),
    sa.Column('post_id', sa.Uuid(), nullable=False),
    sa.Column('recorded_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('outgoing_deployment_id', 'incoming_person_id')
    )
    op.create_table('transition',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('notification_id', sa.Uuid(), nullable=False),
    sa.Column('from_state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
    sa.Column('to_state', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('reason', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('transition', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_transition_notification_id'), ['notification_id'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('transition', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_transition_notification_id'))

    op.drop_table('transition')
    op.drop_table('succession')
    op.drop_table('processed_event')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_published_at'))

    op.drop_table('outbox')
    with op.batch_alter_table('notification', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_notification_subject'))
        batch_op.drop_index(batch_op.f('ix_notification_state'))
        batch_op.drop_index(batch_op.f('ix_notification_person_id'))
        batch_op.drop_index(batch_op.f('ix_notification_kind'))
        batch_op.drop_index(batch_op.f('ix_notification_due_at'))

    op.drop_table('notification')
    with op.batch_alter_table('handover_seen', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_handover_seen_post_id'))

    op.drop_table('handover_seen')
    with op.batch_alter_table('call_summary', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_call_summary_region'))

    op.drop_table('call_summary')
    op.drop_table('call_subscriber')
    op.drop_table('call_schedule')
    op.drop_table('call_planned')
    op.drop_table('call_change')
    with op.batch_alter_table('call_agenda_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_call_agenda_item_region'))
        batch_op.drop_index(batch_op.f('ix_call_agenda_item_occurrence'))

    op.drop_table('call_agenda_item')
