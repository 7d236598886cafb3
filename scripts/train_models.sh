#!/usr/bin/env bash
# Rebuild the shipped terrain models: the corpus and the style classifier fitted on it, then the base and
# super-resolution models. Each step is one command; the corpus parts and the two terrain models run side by side
# (one core each). The terrain models are fine-tuned from the weights shipped at revision d49fce2 (trained on
# corpus v2, whose landscape evolution gathered area along the steepest paths; configs name their sha256), taken
# from git history here. Corpus v2 is what these corpus lines built at revision d49fce2: the data of the curve
# guides' profile model (`python -m backend.training.train_terrain configs/profile_1d.json`, minutes; retrained
# on v3 it drew cliffs whose curve came out 1.41x as rough as the land around, over the natural-edit limit of
# 1.3), and of the voxel and erosion-surrogate models.
# On a GPU machine set "threads": 0 in the configs and drop OMP_NUM_THREADS.
source "$(dirname "$0")/env.sh"
export OMP_NUM_THREADS=1
python -m backend.data.corpus --out corpus/v3a --seed 0 --maps-per-style 48 \
  --styles alpine,rolling_hills,desert_dunes &
python -m backend.data.corpus --out corpus/v3b --seed 0 --maps-per-style 48 \
  --styles archipelago,volcanic,glacial_valleys &
python -m backend.data.corpus --out corpus/v3c --seed 0 --maps-per-style 48 --styles canyon_mesa &
wait
python -m backend.metrics.style_classifier --corpus corpus/v3a corpus/v3b corpus/v3c --out models/style_classifier.json
mkdir -p runs/init
for kind in base superres; do
  git show "d49fce2:models/terrain_$kind.safetensors" > "runs/init/terrain_$kind.safetensors"
done
python -m backend.training.train_terrain configs/terrain_base.json &
python -m backend.training.train_terrain configs/terrain_superres.json &
wait
