"""The history store: results, events and runs in SQLite, written from one thread."""
