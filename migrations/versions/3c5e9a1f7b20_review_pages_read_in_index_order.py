"""review pages read in index order

A clinic's published reviews (newest month first) and the moderation queue (oldest
first) were sorted on every page view: with a million reviews that meant sorting every
published review of a busy clinic, or every pending review in the city, to show 10 or 25.
These two indexes hold the rows in the order the pages read them; the first also carries
asked_for_id, so the clinic page's count of reviewers asked for ID reads the index alone.

Revision ID: 3c5e9a1f7b20
Revises: b0832e001498
"""

from alembic import op

# revision identifiers, used by Alembic.
revision = '3c5e9a1f7b20'
down_revision = 'b0832e001498'
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.create_index('ix_review_location_status_month',
                              ['location_id', 'status', 'received_month', 'id', 'asked_for_id'],
                              unique=False)
        batch_op.create_index('ix_review_status_month', ['status', 'received_month', 'id'],
                              unique=False)


def downgrade():
    with op.batch_alter_table('review', schema=None) as batch_op:
        batch_op.drop_index('ix_review_status_month')
        batch_op.drop_index('ix_review_location_status_month')
