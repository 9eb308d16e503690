"""Microsoft Teams transport: botbuilder's CloudAdapter on POST /api/messages."""
