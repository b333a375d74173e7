"""Web clickstream: the event contract and its transformations."""
