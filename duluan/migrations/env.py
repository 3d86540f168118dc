"""Alembic environment: runs migrations with the engine settings the service uses."""

from alembic import context

from duluan.db import ALL_METADATA, create_db_engine

config = context.config
url = config.get_main_option("sqlalchemy.url")
assert url, "sqlalchemy.url must be set by duluan.db.alembic_config"

engine = create_db_engine(url)
with engine.connect() as connection:
    context.configure(
        connection=connection,
        target_metadata=ALL_METADATA,
        render_as_batch=connection.dialect.name == "sqlite",  # SQLite needs batch mode for ALTER
    )
    with context.begin_transaction():
        context.run_migrations()
engine.dispose()
