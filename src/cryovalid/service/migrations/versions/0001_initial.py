"""The jobs table: queue and archive.

Revision ID: 0001
Revises:
Create Date: 2026-12-01
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "jobs",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("token", sa.String(64), nullable=False),
        sa.Column("private", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("status", sa.String(16), nullable=False, server_default="queued"),
        sa.Column("name", sa.String(200), nullable=False, server_default=""),
        sa.Column("emdb_id", sa.String(24), nullable=True),
        sa.Column("client", sa.String(64), nullable=False, server_default=""),
        sa.Column("created", sa.Float, nullable=False),
        sa.Column("started", sa.Float, nullable=True),
        sa.Column("finished", sa.Float, nullable=True),
        sa.Column("threshold", sa.Float, nullable=True),
        sa.Column("resolution", sa.Float, nullable=True),
        sa.Column("formats", sa.String(32), nullable=False, server_default="json,html,pdf"),
        sa.Column("files", sa.JSON, nullable=False),
        sa.Column("progress", sa.JSON, nullable=False),
        sa.Column("error", sa.Text, nullable=True),
        sa.Column("notes", sa.JSON, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
        sa.Column("runs", sa.Integer, nullable=False, server_default="0"),
        sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
        sa.Column("host", sa.String(255), nullable=True),
        sa.Column("pid", sa.Integer, nullable=True),
        sa.Column("pid_start", sa.BigInteger, nullable=True),
        sa.Column("heartbeat", sa.Float, nullable=True),
        sa.Column("score_passed", sa.Integer, nullable=True),
        sa.Column("score_evaluable", sa.Integer, nullable=True),
        sa.Column("score", sa.Float, nullable=True),
        sa.Column("levels", sa.String(32), nullable=True),
        sa.Column("report", sa.JSON, nullable=True),
    )
    op.create_index("ix_jobs_status_created", "jobs", ["status", "created"])
    op.create_index("ix_jobs_created", "jobs", ["created"])
    op.create_index("ix_jobs_emdb_id", "jobs", ["emdb_id"])
    op.create_index("ix_jobs_score", "jobs", ["score"])


def downgrade():
    op.drop_table("jobs")
