"""The names every layer shares: states of requests, schedules, outbox rows and timers, and the
limits people meet in every surface. A leaf: it imports nothing of ours, and anyone may import
it."""
