"""The engine: factory, Pipeline, scheduler, buckets, collation and runner; it knows no task."""
