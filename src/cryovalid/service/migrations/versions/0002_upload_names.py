"""The names the files were uploaded with (shown in the report and on the job's pages).

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-01

A JSON column ``names``: {field: client file name} (``map``, ``half_map_1``, ``half_map_2``,
``model``), each a plain name checked by ``uploads.check_client_name``. The rows of 0001 keep
everything and get NULL: their report shows the stored names, as it did.
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("jobs", sa.Column("names", sa.JSON, nullable=True))


def downgrade():
    with op.batch_alter_table("jobs") as batch:  # SQLite before 3.35 cannot DROP COLUMN
        batch.drop_column("names")
