"""the lessons store's tables

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

SQLITE_SEARCH = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS item_fts USING fts5(title, body, facets, content='lesson_item', "
    "content_rowid='seq', tokenize='porter unicode61 remove_diacritics 2')",
    "INSERT INTO item_fts(item_fts, rank) VALUES ('rank', 'bm25(5.0, 1.0, 0.0)')",
    "CREATE TRIGGER IF NOT EXISTS lesson_item_fts_insert AFTER INSERT ON lesson_item BEGIN "
    "INSERT INTO item_fts(rowid, title, body, facets) VALUES (new.seq, new.title, new.body, new.facets); END",
    "CREATE TRIGGER IF NOT EXISTS lesson_item_fts_delete AFTER DELETE ON lesson_item BEGIN "
    "INSERT INTO item_fts(item_fts, rowid, title, body, facets) "
    "VALUES ('delete', old.seq, old.title, old.body, old.facets); END",
    "CREATE TRIGGER IF NOT EXISTS lesson_item_fts_update AFTER UPDATE OF title, body, facets ON lesson_item BEGIN "
    "INSERT INTO item_fts(item_fts, rowid, title, body, facets) "
    "VALUES ('delete', old.seq, old.title, old.body, old.facets); "
    "INSERT INTO item_fts(rowid, title, body, facets) VALUES (new.seq, new.title, new.body, new.facets); END",
)
POSTGRES_SEARCH = (
    "ALTER TABLE lesson_item ADD COLUMN IF NOT EXISTS search tsvector GENERATED ALWAYS AS "
    "(setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', body), 'B')) STORED",
    "CREATE INDEX IF NOT EXISTS lesson_item_search ON lesson_item USING gin (search)",
)


def upgrade() -> None:
    op.create_table('aar',
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('person_id', sa.Uuid(), nullable=False),
    sa.Column('deployment_id', sa.Uuid(), nullable=True),
    sa.Column('operation', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('country', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
    sa.Column('due_on', sa.Date(), nullable=False),
    sa.Column('requested_by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.Column('state', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('submitted_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('item_id', sa.Uuid(), nullable=True),
    sa.Column('next_step', sa.Integer(), nullable=False),
    sa.Column('next_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=True),
    sa.Column('version', sa.Integer(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('aar', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_aar_deployment_id'), ['deployment_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_aar_due_on'), ['due_on'], unique=False)
        batch_op.create_index(batch_op.f('ix_aar_next_at'), ['next_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_aar_person_id'), ['person_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_aar_region'), ['region'], unique=False)
        batch_op.create_index(batch_op.f('ix_aar_state'), ['state'], unique=False)

    op.create_table('item_link',
    sa.Column('item_id', sa.Uuid(), nullable=False),
    sa.Column('similar_id', sa.Uuid(), nullable=False),
    sa.Column('score', sa.Float(), nullable=False),
    sa.PrimaryKeyConstraint('item_id', 'similar_id')
    )
    with op.batch_alter_table('item_link', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_item_link_similar_id'), ['similar_id'], unique=False)

    op.create_table('lesson_item',
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('id', sa.Uuid(), nullable=False),
    sa.Column('reference', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
    sa.Column('kind', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('author_id', sa.Uuid(), nullable=False),
    sa.Column('country', sqlmodel.sql.sqltypes.AutoString(length=2), nullable=False),
    sa.Column('region', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
    sa.Column('themes', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=False),
    sa.Column('classification', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('status', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('title', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('body', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('tags', sqlmodel.sql.sqltypes.AutoString(length=500), nullable=False),
    sa.Column('facets', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('merged_into', sa.Uuid(), nullable=True),
    sa.Column('aar_id', sa.Uuid(), nullable=True),
    sa.Column('attachment_kind', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=True),
    sa.Column('attachment_file_id', sqlmodel.sql.sqltypes.AutoString(length=300), nullable=True),
    sa.Column('attachment_name', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=True),
    sa.Column('created_at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('seq'),
    sa.UniqueConstraint('id'),
    sa.UniqueConstraint('reference')
    )
    with op.batch_alter_table('lesson_item', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_lesson_item_author_id'), ['author_id'], unique=False)
        batch_op.create_index(batch_op.f('ix_lesson_item_classification'), ['classification'], unique=False)
        batch_op.create_index(batch_op.f('ix_lesson_item_country'), ['country'], unique=False)
        batch_op.create_index(batch_op.f('ix_lesson_item_created_at'), ['created_at'], unique=False)
        batch_op.create_index(batch_op.f('ix_lesson_item_region'), ['region'], unique=False)
        batch_op.create_index(batch_op.f('ix_lesson_item_status'), ['status'], unique=False)

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
    op.create_table('review_step',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('item_id', sa.Uuid(), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=12), nullable=False),
    sa.Column('detail', sqlmodel.sql.sqltypes.AutoString(), nullable=False),
    sa.Column('by', sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
    sa.Column('at', sqlmodel.sql.sqltypes.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('review_step', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_review_step_item_id'), ['item_id'], unique=False)

    op.create_table('item_theme',
    sa.Column('theme', sqlmodel.sql.sqltypes.AutoString(length=30), nullable=False),
    sa.Column('item_seq', sa.Integer(), nullable=False),
    sa.ForeignKeyConstraint(['item_seq'], ['lesson_item.seq'], ),
    sa.PrimaryKeyConstraint('theme', 'item_seq')
    )
    # full-text search, as the store queries it (services/lessons/store.py at this revision)
    for ddl in SQLITE_SEARCH if op.get_bind().dialect.name == "sqlite" else POSTGRES_SEARCH:
        op.execute(ddl)


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS lesson_item_fts_{name}")
        op.execute("DROP TABLE IF EXISTS item_fts")
    else:
        op.execute("DROP INDEX IF EXISTS lesson_item_search")
        op.execute("ALTER TABLE lesson_item DROP COLUMN IF EXISTS search")
    op.drop_table('item_theme')
    with op.batch_alter_table('review_step', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_review_step_item_id'))

    op.drop_table('review_step')
    op.drop_table('processed_event')
    with op.batch_alter_table('outbox', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_outbox_published_at'))

    op.drop_table('outbox')
    with op.batch_alter_table('lesson_item', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_lesson_item_status'))
        batch_op.drop_index(batch_op.f('ix_lesson_item_region'))
        batch_op.drop_index(batch_op.f('ix_lesson_item_created_at'))
        batch_op.drop_index(batch_op.f('ix_lesson_item_country'))
        batch_op.drop_index(batch_op.f('ix_lesson_item_classification'))
        batch_op.drop_index(batch_op.f('ix_lesson_item_author_id'))

    op.drop_table('lesson_item')
    with op.batch_alter_table('item_link', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_item_link_similar_id'))

    op.drop_table('item_link')
    with op.batch_alter_table('aar', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_aar_state'))
        batch_op.drop_index(batch_op.f('ix_aar_region'))
        batch_op.drop_index(batch_op.f('ix_aar_person_id'))
        batch_op.drop_index(batch_op.f('ix_aar_next_at'))
        batch_op.drop_index(batch_op.f('ix_aar_due_on'))
        batch_op.drop_index(batch_op.f('ix_aar_deployment_id'))

    op.drop_table('aar')
