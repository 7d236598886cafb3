#!/usr/bin/env bash
# Rebuild the shipped terrain models from scratch: the corpus, then the base and super-resolution
# models, then the curve guides' profile model. Each step is one command; the two halves of the corpus
# and the two terrain models run side by side (one core each). On a GPU machine set "threads": 0 in the
# configs and drop OMP_NUM_THREADS.
source "$(dirname "$0")/env.sh"
export OMP_NUM_THREADS=1
python -m backend.data.corpus --out corpus/a --seed 0 --maps-per-style 48 \
  --styles alpine,rolling_hills,desert_dunes,canyon_mesa &
python -m backend.data.corpus --out corpus/b --seed 0 --maps-per-style 48 \
  --styles archipelago,volcanic,glacial_valleys &
wait
python -m backend.training.train_terrain configs/terrain_base.json &
python -m backend.training.train_terrain configs/terrain_superres.json &
wait
python -m backend.training.train_terrain configs/profile_1d.json  # the curve guides' 1D model, minutes
