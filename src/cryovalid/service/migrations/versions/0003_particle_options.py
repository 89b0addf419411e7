"""The options of the 2D classes and particles (Levels 2-4 from uploads).

Revision ID: 0003
Revises: 0002
Create Date: 2026-12-02

A JSON column ``options``: {name: value} for ``symmetry`` (a point group, checked by
``cryovalid.api.check_symmetry``), ``classes_pixel``, ``particles_pixel`` (Å), ``voltage_kv``,
``cs_mm`` and ``q0``, each only when the submission gave it. The rows of 0002 keep everything
and get NULL: their jobs ran with the defaults, as they did.
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade():
    op.add_column("jobs", sa.Column("options", sa.JSON, nullable=True))


def downgrade():
    with op.batch_alter_table("jobs") as batch:  # SQLite before 3.35 cannot DROP COLUMN
        batch.drop_column("options")
