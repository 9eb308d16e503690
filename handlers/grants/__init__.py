"""Grants: turning an activation into real access somewhere else, and taking it away on time."""
