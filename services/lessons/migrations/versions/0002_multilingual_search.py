"""search in English, French and Arabic: the full-text index reads stems made in Python

Revision ID: 0002
Revises: 0001

Each item's title and body as stems (title_terms, body_terms: services/lessons/stemming.py)
are computed for the items already stored, and the index (FTS5 on SQLite, the generated
tsvector on PostgreSQL) is made anew over them.
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from services.lessons.stemming import item_terms

revision: str = '0002'
down_revision: str | None = '0001'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000

# full-text search, as the store queries it (services/lessons/search.py at this revision)
SQLITE_SEARCH = (
    "CREATE VIRTUAL TABLE IF NOT EXISTS item_fts USING fts5(title_terms, body_terms, facets, "
    "content='lesson_item', content_rowid='seq', tokenize='unicode61 remove_diacritics 0')",
    "INSERT INTO item_fts(item_fts, rank) VALUES ('rank', 'bm25(5.0, 1.0, 0.0)')",
    "CREATE TRIGGER IF NOT EXISTS lesson_item_fts_insert AFTER INSERT ON lesson_item BEGIN "
    "INSERT INTO item_fts(rowid, title_terms, body_terms, facets) "
    "VALUES (new.seq, new.title_terms, new.body_terms, new.facets); END",
    "CREATE TRIGGER IF NOT EXISTS lesson_item_fts_delete AFTER DELETE ON lesson_item BEGIN "
    "INSERT INTO item_fts(item_fts, rowid, title_terms, body_terms, facets) "
    "VALUES ('delete', old.seq, old.title_terms, old.body_terms, old.facets); END",
    "CREATE TRIGGER IF NOT EXISTS lesson_item_fts_update AFTER UPDATE OF title_terms, body_terms, facets "
    "ON lesson_item BEGIN "
    "INSERT INTO item_fts(item_fts, rowid, title_terms, body_terms, facets) "
    "VALUES ('delete', old.seq, old.title_terms, old.body_terms, old.facets); "
    "INSERT INTO item_fts(rowid, title_terms, body_terms, facets) "
    "VALUES (new.seq, new.title_terms, new.body_terms, new.facets); END",
    "INSERT INTO item_fts(item_fts) VALUES ('rebuild')",  # the items already there
)
POSTGRES_SEARCH = (
    "ALTER TABLE lesson_item ADD COLUMN IF NOT EXISTS search tsvector GENERATED ALWAYS AS "
    "(setweight(to_tsvector('simple', title_terms), 'A') || setweight(to_tsvector('simple', body_terms), 'B')) "
    "STORED",
    "CREATE INDEX IF NOT EXISTS lesson_item_search ON lesson_item USING gin (search)",
)

# as revision 0001 made it (English stems of the title and body), for the downgrade
ENGLISH_SQLITE_SEARCH = (
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
    "INSERT INTO item_fts(item_fts) VALUES ('rebuild')",
)
ENGLISH_POSTGRES_SEARCH = (
    "ALTER TABLE lesson_item ADD COLUMN IF NOT EXISTS search tsvector GENERATED ALWAYS AS "
    "(setweight(to_tsvector('english', title), 'A') || setweight(to_tsvector('english', body), 'B')) STORED",
    "CREATE INDEX IF NOT EXISTS lesson_item_search ON lesson_item USING gin (search)",
)


def _drop_search(sqlite: bool) -> None:
    if sqlite:
        for name in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS lesson_item_fts_{name}")
        op.execute("DROP TABLE IF EXISTS item_fts")
    else:
        op.execute("DROP INDEX IF EXISTS lesson_item_search")
        op.execute("ALTER TABLE lesson_item DROP COLUMN IF EXISTS search")


def _stem_stored_items() -> None:
    bind, after = op.get_bind(), 0
    while True:
        rows = bind.execute(sa.text("SELECT seq, title, body FROM lesson_item WHERE seq > :after ORDER BY seq "
                                    "LIMIT :n"), {"after": after, "n": BATCH}).all()
        if not rows:
            return
        stemmed = []
        for seq, title, body in rows:
            title_terms, body_terms = item_terms(title, body)
            stemmed.append({"seq": seq, "title_terms": title_terms, "body_terms": body_terms})
        bind.execute(sa.text("UPDATE lesson_item SET title_terms = :title_terms, body_terms = :body_terms "
                             "WHERE seq = :seq"), stemmed)
        after = rows[-1][0]


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    _drop_search(sqlite)
    # a PostgreSQL store whose tables this version made at start has them already (adopted, it is stamped
    # at 0001: its generated column is no model's)
    present = {c["name"] for c in sa.inspect(op.get_bind()).get_columns("lesson_item")}
    for name in ("title_terms", "body_terms"):
        if name not in present:
            op.add_column("lesson_item", sa.Column(name, sqlmodel.sql.sqltypes.AutoString(), nullable=False,
                                                   server_default=""))
    _stem_stored_items()
    for ddl in SQLITE_SEARCH if sqlite else POSTGRES_SEARCH:
        op.execute(ddl)


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    _drop_search(sqlite)
    with op.batch_alter_table("lesson_item", schema=None) as batch_op:
        batch_op.drop_column("body_terms")
        batch_op.drop_column("title_terms")
    for ddl in ENGLISH_SQLITE_SEARCH if sqlite else ENGLISH_POSTGRES_SEARCH:
        op.execute(ddl)
