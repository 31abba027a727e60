"""The Orga-compatible sandbox: an aiohttp API server and, for calls, an echo peer."""
