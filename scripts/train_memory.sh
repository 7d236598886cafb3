#!/usr/bin/env bash
# Rebuild the shipped memory model (models/terrain_memory.safetensors): a corpus of large maps simulated
# at the base model's 120 m cells (256² = 4 x 4 tiles of 64 base cells, 2 x 2 regions), then the
# memory-conditioned base model fine-tuned from models/terrain_base.safetensors on walks over them.
# The two halves of the corpus run side by side (one core each).
source "$(dirname "$0")/env.sh"
export OMP_NUM_THREADS=1
python -m backend.data.corpus --out corpus/walks_a --seed 7 --maps-per-style 8 --map-size 256 --cell-size 120 \
  --tile 128 --styles alpine,rolling_hills,desert_dunes,canyon_mesa &
python -m backend.data.corpus --out corpus/walks_b --seed 7 --maps-per-style 8 --map-size 256 --cell-size 120 \
  --tile 128 --styles archipelago,volcanic,glacial_valleys &
wait
python -m backend.training.train_memory configs/memory_base.json
