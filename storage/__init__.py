"""SQLite request log and moderation store; knows nothing of Discord or torch."""
