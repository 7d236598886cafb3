"""A style classifier on the realism metrics: nearest centroid in z-scored feature space.

It answers two questions with one small, inspectable model: does a generated terrain look like
the style it was asked for (the learned-model report), and which style mix does an artist's
existing terrain resemble (the add-on's "reference style"). Fitted on corpus maps by

    python -m backend.metrics.style_classifier --corpus corpus/a corpus/b --out models/style_classifier.json

and stored as JSON (feature names, means, stds, one centroid per style).
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from backend.metrics.realism import FAMILIES, FEATURE_SCALES, terrain_features
from backend.terrain import Heightfield

FEATURE_NAMES: tuple[str, ...] = tuple(f"{fam}.{k}" for fam in FAMILIES for k in FEATURE_SCALES[fam])


def feature_vector(hf: Heightfield) -> np.ndarray:
    """The realism features of one terrain as a flat vector in FEATURE_NAMES order."""
    feats = terrain_features(hf)
    return np.array([feats[name.split(".")[0]][name.split(".")[1]] for name in FEATURE_NAMES], np.float64)


@dataclass(frozen=True)
class StyleClassifier:
    styles: list[str]
    mean: list[float]
    std: list[float]
    centroids: list[list[float]]  # [style][feature], z-scored
    temperature: float = 1.0  # softmax over -distance / temperature for style weights

    @classmethod
    def fit(cls, features: np.ndarray, labels: Sequence[str]) -> StyleClassifier:
        """features (N, F) raw feature vectors; labels (N,) style names. NaNs are imputed by the mean."""
        x = np.asarray(features, np.float64)
        mean = np.nanmean(x, axis=0)
        std = np.nanstd(x, axis=0) + 1e-9
        z = np.where(np.isnan(x), 0.0, (x - mean) / std)
        styles = sorted(set(labels))
        labels_arr = np.asarray(labels)
        centroids = [z[labels_arr == s].mean(axis=0).tolist() for s in styles]
        return cls(styles, mean.tolist(), std.tolist(), centroids)

    def distances(self, features: np.ndarray) -> np.ndarray:
        """(N, F) raw features -> (N, S) Euclidean distances to each style centroid."""
        x = np.atleast_2d(np.asarray(features, np.float64))
        z = (x - np.array(self.mean)) / np.array(self.std)
        z = np.where(np.isnan(z), 0.0, z)
        return np.linalg.norm(z[:, None, :] - np.array(self.centroids)[None], axis=2)

    def predict(self, features: np.ndarray) -> list[str]:
        return [self.styles[i] for i in self.distances(features).argmin(axis=1)]

    def style_weights(self, features: np.ndarray) -> dict[str, float]:
        """A style mix for one terrain: softmax of negative distances (sums to 1)."""
        d = self.distances(features)[0]
        w = np.exp(-(d - d.min()) / self.temperature)
        w /= w.sum()
        return {s: float(v) for s, v in zip(self.styles, w)}

    def save(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps({"feature_names": list(FEATURE_NAMES), **asdict(self)}, indent=1) + "\n")

    @classmethod
    def load(cls, path: str | Path) -> StyleClassifier:
        data = json.loads(Path(path).read_text())
        if data.pop("feature_names") != list(FEATURE_NAMES):
            raise ValueError(f"{path} was fitted on other features than {FEATURE_NAMES}")
        return cls(**data)


def confusion(truth: Sequence[str], predicted: Sequence[str], styles: Sequence[str]) -> np.ndarray:
    """(S, S) counts: row = true style, column = predicted style."""
    m = np.zeros((len(styles), len(styles)), int)
    for t, p in zip(truth, predicted):
        m[styles.index(t), styles.index(p)] += 1
    return m


def main(argv: Sequence[str] | None = None) -> None:
    from backend.data.datasets import load_maps

    ap = argparse.ArgumentParser(description="Fit the style classifier on corpus maps.")
    ap.add_argument("--corpus", nargs="+", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--maps-per-style", type=int, default=12, help="training maps per style (features are slow)")
    args = ap.parse_args(argv)
    maps = load_maps(args.corpus, "train")
    feats, labels = [], []
    for s, name in enumerate(maps.style_names):
        for i in np.flatnonzero(maps.style == s)[:args.maps_per_style]:
            feats.append(feature_vector(Heightfield(maps.heights[i], maps.cell_size)))
            labels.append(name)
    clf = StyleClassifier.fit(np.stack(feats), labels)
    held = load_maps(args.corpus, "heldout")
    truth = [held.style_names[s] for s in held.style]
    pred = clf.predict(np.stack([feature_vector(Heightfield(h, held.cell_size)) for h in held.heights]))
    accuracy = float(np.mean([t == p for t, p in zip(truth, pred)]))
    clf.save(args.out)
    print(f"fitted on {len(labels)} maps; held-out accuracy {accuracy:.3f} ({len(truth)} maps); wrote {args.out}")


if __name__ == "__main__":
    main()
