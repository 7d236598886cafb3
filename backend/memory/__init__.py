"""Pluto, the adaptive hierarchical memory of a world: the learned parts (`pluto`) and one world's bounded,
persisted state (`world`)."""
