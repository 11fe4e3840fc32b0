"""The output safety filter: moderator rules matched against prompts and streamed outputs (no Discord, no SQLite)."""
