"""continuebot's app layer: the Discord bot and the owner's command line."""
