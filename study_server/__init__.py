"""The study server (Flask + SQLAlchemy). Nothing connects or starts at import."""
