"""The one U-Net backbone in 1D, 2D and 3D, with every conditioning input."""

from __future__ import annotations

import pytest
import torch

from backend.diffusion import Conditioning, Denoiser
from backend.networks import UNetConfig, build_unet, count_params
from backend.networks.unet import EMBEDDINGS

torch.set_num_threads(1)  # 2 shared cores: more threads oversubscribe and crawl

SHAPES = {1: (2, 1, 32), 2: (2, 1, 16, 16), 3: (1, 1, 8, 8, 8)}  # [B, C, *S]


def conditioned(dims: int) -> tuple[Denoiser, torch.Tensor, Conditioning]:
    torch.manual_seed(0)
    den = Denoiser(build_unet("tiny", dims=dims, n_styles=3, n_sliders=2, cond_channels=2, memory_dim=8))
    B, _, *S = SHAPES[dims]
    cond = Conditioning(style_weights=torch.softmax(torch.randn(B, 3), 1), sliders=torch.randn(B, 2),
                        spatial=torch.randn(B, 2, *S), memory=torch.randn(B, 5, 8))
    return den, torch.randn(*SHAPES[dims]), cond


def forward_backward(dims: int, device: str) -> None:
    den, x, cond = conditioned(dims)
    den, x, cond = den.to(device), x.to(device), cond.map(lambda t: t.to(device))
    sigma = torch.full((x.shape[0],), 1.3, device=device)
    out = den(x, sigma, cond)
    assert out.shape == x.shape and out.dtype == torch.float32
    out.square().mean().backward()
    for name, p in den.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), name
    assert all(p.grad.abs().sum() > 0 for n, p in den.named_parameters() if "kv_x" in n)  # memory was read


@pytest.mark.parametrize("dims", [1, 2, 3])
def test_forward_backward_cpu(dims: int) -> None:
    forward_backward(dims, "cpu")


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dims", [1, 2, 3])
def test_forward_backward_cuda(dims: int) -> None:
    forward_backward(dims, "cuda")


def test_conditioning_inputs_matter_and_nulls_are_exact() -> None:
    den, x, cond = conditioned(2)
    sigma = torch.full((2,), 0.7)
    with torch.no_grad():
        base = den(x, sigma, cond)
        for field in ("style_weights", "sliders", "spatial", "memory"):
            assert not torch.allclose(base, den(x, sigma, cond.nulled((field,)))), field
        # Zero style weights / sliders are exactly "absent" (bias-free embeddings): the CFG null.
        assert torch.equal(den(x, sigma, cond.nulled(("style_weights", "sliders"))),
                           den(x, sigma, cond.replace(style_weights=None, sliders=None)))
        # Memory None skips cross-attention.
        assert not torch.allclose(base, den(x, sigma, cond.replace(memory=None)))


def test_memory_in_the_embedding_is_bias_free_and_read() -> None:
    torch.manual_seed(0)
    net = build_unet("tiny", dims=3, attn_levels=(), mid_attn=False, memory_dim=8, memory_emb=True)  # no attention
    x, c_noise = torch.randn(*SHAPES[3]), torch.tensor([0.3])
    with torch.no_grad():
        torch.nn.init.normal_(net.memory_emb.weight)
        plain = net(x, c_noise)
        assert torch.equal(net(x, c_noise, memory=torch.zeros(1, 5, 8)), plain)  # the null memory adds nothing
        assert not torch.allclose(net(x, c_noise, memory=torch.randn(1, 5, 8)), plain)  # a memory reaches it
    with pytest.raises(ValueError, match="memory_emb"):
        build_unet("tiny", memory_emb=True)


def test_preset_sizes_and_bad_inputs() -> None:
    assert count_params(build_unet("tiny")) < 100_000
    assert count_params(build_unet("tiny")) < count_params(build_unet("small")) < count_params(build_unet("base"))
    cfg = UNetConfig.preset("small", dims=3)
    assert UNetConfig.from_dict(cfg.to_dict()) == cfg
    with pytest.raises(ValueError, match="unknown UNet preset"):
        UNetConfig.preset("huge")
    with pytest.raises(ValueError, match="dims"):
        UNetConfig(dims=4)
    den, x, cond = conditioned(2)
    with pytest.raises(ValueError, match="divisible"):
        den(torch.randn(2, 1, 15, 16), torch.ones(2), cond.replace(spatial=torch.randn(2, 2, 15, 16)))
    with pytest.raises(ValueError, match="spatial"):
        den(x, torch.ones(2), cond.replace(spatial=None))
    with pytest.raises(ValueError, match="style_weights"):
        den(x, torch.ones(2), cond.replace(style_weights=torch.ones(2, 4) / 4))
    with pytest.raises(ValueError, match="sigma"):
        den(x, torch.ones(3), cond)
    with pytest.raises(ValueError, match="sigma_data"):
        Denoiser(build_unet("tiny"), sigma_data=0.0)


@pytest.mark.parametrize("norm", ["group", "none"])
@pytest.mark.parametrize("side", [16, 64])
def test_inference_matches_training_forward_and_leaves_inputs_and_flags_alone(norm: str, side: int) -> None:
    """Inference overwrites its own activations and convolves small maps without oneDNN: the same numbers as the
    autograd forward (which does neither), the caller's tensors untouched, oneDNN enabled again afterwards."""
    torch.manual_seed(0)
    net = build_unet("tiny", norm=norm, n_styles=3, attn_levels=(), mid_attn=False).eval()
    x, c_noise, styles = torch.randn(2, 1, side, side), torch.rand(2), torch.softmax(torch.randn(2, 3), 1)
    kept = x.clone()
    with torch.no_grad():
        fast = net(x, c_noise, styles)
    assert torch.backends.mkldnn.enabled
    torch.backends.mkldnn.enabled = side > 24
    try:
        reference = net(x, c_noise, styles).detach()  # with grad: the plain activations, the same backend
    finally:
        torch.backends.mkldnn.enabled = True
    assert torch.equal(fast, reference) and torch.equal(x, kept)
    oneDNN = net(x, c_noise, styles).detach()
    assert torch.allclose(fast, oneDNN, atol=1e-5)  # the two backends agree to rounding


def test_body_in_bfloat16_keeps_embeddings_float32_and_outputs_close() -> None:
    """Serving may run a 2D U-Net's body in bfloat16 (`LoadedModel.load`): the noise, style, slider and memory
    embeddings stay float32, the denoiser still returns float32, within bfloat16's rounding of float32's."""
    den, x, cond = conditioned(2)
    sigma = torch.full((2,), 0.7)
    with torch.inference_mode():
        want = den(x, sigma, cond)
        den.net.run_body_in(torch.bfloat16)
        got = den(x, sigma, cond)
    for name, p in den.net.named_parameters():
        embedding = name.split(".")[0] in EMBEDDINGS
        assert p.dtype == (torch.float32 if embedding else torch.bfloat16), name
    assert got.dtype == torch.float32 and torch.isfinite(got).all()
    assert 0 < ((got - want).norm() / want.norm()).item() < 0.02


def test_wide_maps_served_in_bfloat16_and_small_ones_as_trained() -> None:
    """`serve_wide_maps_in` runs maps from 64² on through a bfloat16 copy and smaller ones through the float32
    net itself (bit for bit); the net's state dict is what it was."""
    torch.manual_seed(0)
    net = build_unet("tiny", n_styles=3).eval()
    state = {k: v.clone() for k, v in net.state_dict().items()}
    small, wide = torch.randn(2, 1, 16, 16), torch.randn(2, 1, 64, 64)
    c_noise, styles = torch.rand(2), torch.softmax(torch.randn(2, 3), 1)
    with torch.inference_mode():
        want_small, want_wide = net(small, c_noise, styles), net(wide, c_noise, styles)
        net.serve_wide_maps_in(torch.bfloat16)
        got_small, got_wide = net(small, c_noise, styles), net(wide, c_noise, styles)
    assert torch.equal(got_small, want_small)
    assert got_wide.dtype == torch.float32 and 0 < ((got_wide - want_wide).norm() / want_wide.norm()).item() < 0.02
    after = net.state_dict()
    assert after.keys() == state.keys() and all(torch.equal(v, state[k]) for k, v in after.items())
