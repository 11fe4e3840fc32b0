"""The Discord front end: the client, slash commands, buttons, views and delivery of results."""
