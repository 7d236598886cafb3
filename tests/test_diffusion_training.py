"""Training: a tiny model learns, checkpoints round-trip bit for bit, and resume is exact."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from backend.diffusion import Denoiser, EDMLoss
from backend.diffusion.distillation import progressive_distillation
from backend.models.inference import file_sha256, load_inference, read_metadata, save_inference
from backend.networks import build_unet
from backend.training.loop import Trainer, TrainConfig
from backend.training.train_terrain import start_from_weights

torch.set_num_threads(1)  # 2 shared cores: more threads oversubscribe and crawl

TRAIN_STEPS = 300
# Fixed-point loss (same 64 sigmas and noises before and after): measured 1.19 at init, 0.27
# after 300 steps (0.53 after 200); a 50% drop leaves room for noise but fails if little is learnt.
MIN_EVAL_LOSS_DROP = 0.5
# Mean training loss of the last 20 steps vs the first 20 (different random sigmas, hence looser).
MIN_TRAIN_LOSS_DROP = 0.3


def blobs(n: int = 256, size: int = 16, seed: int = 0) -> torch.Tensor:
    """n Gaussian bumps of random centre, radius and height: [n, 1, size, size]."""
    g = torch.Generator().manual_seed(seed)
    yy, xx = torch.meshgrid(torch.arange(size, dtype=torch.float32), torch.arange(size, dtype=torch.float32),
                            indexing="ij")
    c = torch.rand(n, 2, 1, 1, generator=g) * (size - 6) + 3
    r = torch.rand(n, 1, 1, generator=g) * 2 + 1.5
    a = torch.rand(n, 1, 1, generator=g) + 0.5
    return (a * torch.exp(-((yy - c[:, 0]) ** 2 + (xx - c[:, 1]) ** 2) / (2 * r**2)))[:, None]


def config(tmp: Path | None, steps: int, **kw) -> TrainConfig:
    return TrainConfig(steps=steps, batch_size=16, lr=2e-3, ema_decay=0.99, progress=False,
                       out_dir=None if tmp is None else str(tmp), **kw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory) -> tuple[Trainer, torch.Tensor, list[float]]:
    torch.manual_seed(0)  # only weight init uses the global RNG; training itself is seeded by TrainConfig
    data = blobs()
    loss = EDMLoss()
    trainer = Trainer(Denoiser(build_unet("tiny")), data, loss, config(tmp_path_factory.mktemp("run"), TRAIN_STEPS))
    g = torch.Generator().manual_seed(99)
    sigma = torch.logspace(-2.5, 1.5, 64, base=10)  # spans the training distribution's bulk
    noise = torch.randn(64, 1, 16, 16, generator=g)

    def eval_loss(d: Denoiser) -> float:
        with torch.no_grad():
            return float(loss(d, data[:64], sigma=sigma, noise=noise).mean())

    before = eval_loss(trainer.denoiser)
    trainer.train()
    return trainer, data, [before, eval_loss(trainer.denoiser), eval_loss(trainer.ema)]


def test_tiny_model_learns(trained) -> None:
    trainer, data, (before, after, after_ema) = trained
    assert abs(trainer.denoiser.sigma_data - float(data.double().std())) < 1e-6
    assert after < (1 - MIN_EVAL_LOSS_DROP) * before, (before, after)
    assert after_ema < (1 - MIN_EVAL_LOSS_DROP) * before, (before, after_ema)
    first, last = sum(trainer.losses[:20]) / 20, sum(trainer.losses[-20:]) / 20
    assert last < (1 - MIN_TRAIN_LOSS_DROP) * first, (first, last)
    rows = (Path(trainer.cfg.out_dir) / "metrics.csv").read_text().splitlines()
    assert rows[0].startswith("step,loss") and len(rows) == 1 + TRAIN_STEPS // trainer.cfg.log_every


def test_inference_checkpoint_is_bit_exact(trained, tmp_path: Path) -> None:
    trainer, data, _ = trained
    path = tmp_path / "ema.safetensors"
    save_inference(path, trainer.ema, {"dataset": "blobs16"})
    loaded = load_inference(path, "cpu")
    assert read_metadata(path)["config"] == {"dataset": "blobs16"}
    assert loaded.sigma_data == trainer.ema.sigma_data
    for k, v in trainer.ema.state_dict().items():
        assert torch.equal(v, loaded.state_dict()[k]), k
    x, sigma = data[:8] + 0.5 * torch.randn(8, 1, 16, 16), torch.full((8,), 0.5)
    with torch.no_grad():
        assert torch.equal(trainer.ema(x, sigma), loaded(x, sigma))
    final = load_inference(Path(trainer.cfg.out_dir) / "ema.safetensors")  # written by the trainer at the end
    assert torch.equal(final.state_dict()["net.conv_out.weight"], trainer.ema.state_dict()["net.conv_out.weight"])


def test_resume_matches_uninterrupted_run(tmp_path: Path) -> None:
    data = blobs(64)

    def fresh() -> Denoiser:
        torch.manual_seed(1)
        return Denoiser(build_unet("tiny"))

    straight = Trainer(fresh(), data, EDMLoss(), config(tmp_path / "a", 12, ckpt_every=4))
    straight.train()
    interrupted = Trainer(fresh(), data, EDMLoss(), config(tmp_path / "b", 12, ckpt_every=4))
    interrupted.train(until=6)  # "crash" at step 6: the last checkpoint is step 4
    torch.manual_seed(123)  # a different init must not matter: everything comes from the checkpoint
    resumed = Trainer(Denoiser(build_unet("tiny")), data, EDMLoss(), config(tmp_path / "b", 12, ckpt_every=4))
    assert resumed.step == 4
    resumed.train()
    for a, b in ((straight.denoiser, resumed.denoiser), (straight.ema, resumed.ema)):
        for k, v in a.state_dict().items():
            assert torch.equal(v, b.state_dict()[k]), k
    assert straight.losses[4:] == resumed.losses
    assert not torch.equal(straight.denoiser.net.conv_out.weight, fresh().net.conv_out.weight)  # it did train


def test_batch_workers_train_the_same_steps(tmp_path: Path) -> None:
    """Worker processes build the very batches the training loop would build itself, and a resumed run with
    workers continues from its checkpoint's step."""
    data = blobs(64)

    def run(folder: str, workers: int, until: int | None = None) -> Trainer:
        torch.manual_seed(1)
        trainer = Trainer(Denoiser(build_unet("tiny")), data, EDMLoss(),
                          config(tmp_path / folder, 8, ckpt_every=4, workers=workers))
        trainer.train(until)
        return trainer

    alone, helped = run("a", 0), run("b", 2)
    assert helped.losses == alone.losses and len(alone.losses) == 8
    run("c", 2, until=6)
    resumed = run("c", 2)
    assert resumed.losses == alone.losses[4:]


def test_fine_tuning_starts_from_the_named_weights_only(trained, tmp_path: Path) -> None:
    """A fresh run takes the file's weights when its hash matches; a wrong hash refuses; a resumed run keeps its
    own checkpoint (the shipped file it started from may since have been overwritten by the run itself)."""
    trainer, _, _ = trained
    path = tmp_path / "start.safetensors"
    save_inference(path, trainer.ema)
    named = {"file": str(path), "sha256": file_sha256(path)}
    fresh = Denoiser(build_unet("tiny"))
    start_from_weights(fresh, named, str(tmp_path / "new_run"))
    for k, v in trainer.ema.state_dict().items():
        assert torch.equal(v, fresh.state_dict()[k]), k
    with pytest.raises(ValueError, match="sha256"):
        start_from_weights(Denoiser(build_unet("tiny")), {**named, "sha256": "0" * 64}, None)
    resumed_dir = tmp_path / "resumed_run"
    resumed_dir.mkdir()
    (resumed_dir / "resume.json").write_text("{}")
    untouched = Denoiser(build_unet("tiny"))
    before = untouched.net.conv_out.weight.clone()
    start_from_weights(untouched, {**named, "sha256": "0" * 64}, str(resumed_dir))
    assert torch.equal(untouched.net.conv_out.weight, before)


def test_progressive_distillation_halves_steps(trained) -> None:
    trainer, data, _ = trained
    losses: list[float] = []
    batches = list(data[:128].split(16))
    student, sigmas = progressive_distillation(trainer.ema, batches, teacher_steps=8, rounds=1, iters_per_round=40,
                                               lr=5e-4, generator=torch.Generator().manual_seed(0), losses=losses)
    assert len(sigmas) == 5 and sigmas[-1] == 0
    assert all(map(torch.isfinite, map(torch.tensor, losses)))
    assert sum(losses[-10:]) < sum(losses[:10]), (losses[:10], losses[-10:])
    assert not torch.equal(student.net.conv_out.weight, trainer.ema.net.conv_out.weight)
    with pytest.raises(ValueError, match="divisible"):
        progressive_distillation(trainer.ema, batches, teacher_steps=6, rounds=2, generator=torch.Generator())


def test_cell_weight_scales_the_loss_where_it_is_set(trained) -> None:
    """A cell weight multiplies each element's error; without one the loss is the plain mean (2D models)."""
    trainer, data, _ = trained
    x0, sigma = data[:4], torch.full((4,), 0.5)
    noise = torch.randn(x0.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        plain = EDMLoss()(trainer.ema, x0, sigma=sigma, noise=noise)
        doubled = EDMLoss(cell_weight=lambda x: torch.full_like(x, 2.0))(trainer.ema, x0, sigma=sigma, noise=noise)
        left = torch.zeros_like(x0)
        left[..., :8] = 1.0
        half = EDMLoss(cell_weight=lambda x: left)(trainer.ema, x0, sigma=sigma, noise=noise)
        right = EDMLoss(cell_weight=lambda x: 1 - left)(trainer.ema, x0, sigma=sigma, noise=noise)
    torch.testing.assert_close(doubled, 2 * plain)
    torch.testing.assert_close(half + right, plain)
    assert not torch.allclose(half, right)


def test_bad_config_raises() -> None:
    with pytest.raises(ValueError, match="empty"):
        Trainer(Denoiser(build_unet("tiny")), torch.zeros(0, 1, 16, 16), EDMLoss(), config(None, 1))
    with pytest.raises(ValueError, match="cond_dropout"):
        EDMLoss(cond_dropout={"style": 0.1})
