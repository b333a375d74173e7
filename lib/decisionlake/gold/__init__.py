"""Gold tables: business-facing, point-in-time views."""
