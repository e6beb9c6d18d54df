"""Shared plumbing: database, Redis, clock, auth, problem responses, metrics."""
