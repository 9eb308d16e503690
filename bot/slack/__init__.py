"""Slack transport: Bolt app on our aiohttp server (HTTP mode) or over Socket Mode."""
