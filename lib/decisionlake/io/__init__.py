"""I/O: every Delta read and write, files, the landing zone's ingest runner, lineage."""
