"""The terminal front end: the owner's subcommands (generate, logs, doctor, invite, prepare-model)."""
