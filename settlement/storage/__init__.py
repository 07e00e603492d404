"""Persistence: the schema, migrations, engines with their durability settings, and the repository."""
