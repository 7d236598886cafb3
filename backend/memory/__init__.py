"""The world memory's learned parts: the memory network (tile encoder, sparse gated writer, baselines and read
embeddings) and the denoiser that reads it (`network`), and its training loss (`loss`). One world's persisted
memory state lives with the world (`backend.world.memory_state`)."""
