"""Code shared by every function: a pure core, one adapter per outside system, and the services."""
