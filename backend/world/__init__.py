"""The world store: unbounded, tiled worlds on disk (`store`), their per-tile seeds (`seeding`) and
an in-memory tile cache (`cache`)."""
