"""D8 flow routing on batched heightfields: depression filling, receivers, drainage area.

Conventions shared by the whole simulation package:

* Heights are ``[B, H, W]`` tensors (metres); cell indices are flattened per batch element
  (``i = row * W + col``), so a receiver array ``[B, H, W]`` holds indices in ``[0, H*W)``.
* By default the outer ring of cells is the base level: boundary cells are outlets (their receiver
  is themselves) and everything that reaches them leaves the map. ``outlets`` (an [H, W] bool
  mask) narrows the base level to some cells, so a map can drain through a few rivers; other
  boundary cells are then ordinary cells whose water flows inwards.
* Depression filling runs on the CPU in float64 (scipy's minimum spanning tree); everything
  else stays on the input's device.
"""

from __future__ import annotations

import math

import numpy as np
import scipy.sparse
import scipy.sparse.csgraph
import torch

# The 8 neighbours as (d_row, d_col); index k is used everywhere for "direction k".
D8_OFFSETS: tuple[tuple[int, int], ...] = (
    (-1, 0), (-1, 1), (0, 1), (1, 1), (1, 0), (1, -1), (0, -1), (-1, -1),
)
D8_DISTANCES: tuple[float, ...] = tuple(math.hypot(dr, dc) for dr, dc in D8_OFFSETS)  # in cells


def shift(x: torch.Tensor, dr: int, dc: int, fill: float = 0.0) -> torch.Tensor:
    """``out[..., r, c] = x[..., r + dr, c + dc]``; cells outside the grid read ``fill``.

    x: [..., H, W] -> [..., H, W]. Used to read neighbour k of every cell at once.
    """
    h, w = x.shape[-2:]
    out = torch.full_like(x, fill)
    r0, r1 = max(0, -dr), min(h, h - dr)
    c0, c1 = max(0, -dc), min(w, w - dc)
    out[..., r0:r1, c0:c1] = x[..., r0 + dr:r1 + dr, c0 + dc:c1 + dc]
    return out


def boundary_mask(h: int, w: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """[H, W] bool, True on the outer ring of cells (the outlets / base level)."""
    m = torch.zeros(h, w, dtype=torch.bool, device=device)
    m[0, :] = m[-1, :] = m[:, 0] = m[:, -1] = True
    return m


def _outlet_mask(h: int, w: int, outlets: torch.Tensor | None, device: torch.device | str) -> torch.Tensor:
    """[H, W] bool base-level cells: ``outlets`` if given (at least one cell), else the ring."""
    if outlets is None:
        return boundary_mask(h, w, device)
    if tuple(outlets.shape) != (h, w) or not bool(outlets.any()):
        raise ValueError(f"outlets must be a non-empty [{h}, {w}] mask, got shape {tuple(outlets.shape)}")
    return outlets.to(device=device, dtype=torch.bool)


def _fill_one(z: np.ndarray, epsilon: float, outlets: np.ndarray) -> np.ndarray:
    """Priority-flood fill of one (H, W) grid via a minimum spanning tree; returns float64 (H, W).

    The filled height of a cell is the lowest possible "highest point" on any path from it to the
    boundary (a minimax path); minimax paths lie on the minimum spanning tree of the grid graph
    with edge weight max(z_i, z_j). Climbing that tree from the boundary with
    ``W_i = max(z_i, W_parent + epsilon)`` gives the epsilon-filled surface in which every interior
    cell has a strictly lower neighbour (its tree parent); the outlets are the cells joined to
    the virtual root (the boundary ring by default). The recurrence along the tree is a
    composition of ``x -> max(a, x + b)`` maps, evaluated for all cells by pointer doubling.
    """
    h, w = z.shape
    n = h * w
    z = z.astype(np.float64)
    idx = np.arange(n).reshape(h, w)
    zmin = float(z.min())
    src, dst = [], []
    for dr, dc in ((0, 1), (1, 0), (1, 1), (1, -1)):  # each undirected D8 edge once
        rows = slice(0, h - dr)
        src.append(idx[rows, max(0, -dc):w - max(0, dc)].ravel())
        dst.append(idx[dr:h, max(0, dc):w - max(0, -dc)].ravel())
    bnd = idx[outlets]
    src.append(bnd)
    dst.append(np.full(bnd.shape, n))  # virtual root node n, outside the map
    src_a, dst_a = np.concatenate(src), np.concatenate(dst)
    zz = np.append(z, zmin)
    weight = np.maximum(zz[src_a], zz[dst_a]) - zmin + 1.0  # > 0: csgraph drops explicit zeros
    graph = scipy.sparse.csr_matrix((weight, (src_a, dst_a)), shape=(n + 1, n + 1))
    tree = scipy.sparse.csgraph.minimum_spanning_tree(graph)
    _, pred = scipy.sparse.csgraph.breadth_first_order(tree, n, directed=False, return_predecessors=True)
    pred = pred[:n].astype(np.int64)
    if (pred < 0).any():
        raise ValueError("grid graph is disconnected; heights contain NaN?")
    # Cell i's map is f_i(x) = max(a_i, x + b_i); compose towards the root by doubling.
    a = z.ravel().copy()
    b = np.full(n, float(epsilon))
    a_root = np.append(a, -np.inf)
    b_root = np.append(b, 0.0)
    parent = np.append(pred, n)
    is_bnd = np.zeros(n + 1, dtype=bool)
    is_bnd[bnd] = True
    a_root[bnd], b_root[bnd] = z.ravel()[bnd], 0.0  # boundary cells keep their height
    parent[bnd] = n
    while True:
        p = parent[:n]
        if (p == n).all():
            break
        # f_i o f_p : x -> max(a_i, max(a_p, x + b_p) + b_i)
        a_new = np.maximum(a_root[:n], a_root[p] + b_root[:n])
        b_new = b_root[:n] + b_root[p]
        done = p == n
        a_root[:n] = np.where(done, a_root[:n], a_new)
        b_root[:n] = np.where(done, b_root[:n], b_new)
        parent[:n] = parent[p]
    return a_root[:n].reshape(h, w)  # root value is -inf, so f(-inf) = a


def fill_depressions(z: torch.Tensor, epsilon: float = 1e-6, outlets: torch.Tensor | None = None) -> torch.Tensor:
    """Fill every depression so that all water can drain to the boundary (or to ``outlets``).

    z: [B, H, W] or [H, W] heights (m) -> same shape, float64, on z's device; outlets: optional
    [H, W] bool base-level cells (default: the boundary ring). With
    ``epsilon > 0`` filled flats get a tiny gradient towards their outlet, so the result has no
    interior cell without a strictly lower neighbour; keep it float64 (float32 would undo that).
    """
    if epsilon < 0:
        raise ValueError(f"epsilon must be >= 0, got {epsilon}")
    squeeze = z.dim() == 2
    zb = z[None] if squeeze else z
    if zb.dim() != 3:
        raise ValueError(f"heights must be [B, H, W] or [H, W], got shape {tuple(z.shape)}")
    arr = zb.detach().to("cpu", torch.float64).numpy()
    base = _outlet_mask(arr.shape[1], arr.shape[2], outlets, "cpu").numpy()
    out = np.stack([_fill_one(arr[i], epsilon, base) for i in range(arr.shape[0])])
    res = torch.from_numpy(out).to(z.device)
    return res[0] if squeeze else res


def d8_receivers(z: torch.Tensor, cell_size: float,
                 outlets: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Steepest-descent (D8) receiver of every cell.

    z: [B, H, W] -> (receiver [B, H, W] int64 flat index, slope [B, H, W] drop/distance (m/m),
    distance [B, H, W] metres to the receiver). Outlets (default: the boundary ring) and pits
    receive themselves (slope 0, distance = cell_size so divisions stay finite).
    """
    b, h, w = z.shape
    big = torch.finfo(z.dtype).max
    drops = torch.stack([
        (z - shift(z, dr, dc, fill=big)) / (dist * cell_size)
        for (dr, dc), dist in zip(D8_OFFSETS, D8_DISTANCES)
    ])  # [8, B, H, W]
    best, k = drops.max(dim=0)
    idx = torch.arange(h * w, device=z.device).reshape(h, w).expand(b, h, w)
    off = torch.tensor([dr * w + dc for dr, dc in D8_OFFSETS], device=z.device)
    dist = torch.tensor(D8_DISTANCES, device=z.device, dtype=z.dtype) * cell_size
    sink = (best <= 0) | _outlet_mask(h, w, outlets, z.device)
    receiver = torch.where(sink, idx, idx + off[k])
    slope = torch.where(sink, torch.zeros_like(best), best)
    distance = torch.where(sink, torch.full_like(best, cell_size), dist[k])
    return receiver, slope, distance


def accumulate(receiver: torch.Tensor, weight: torch.Tensor, reduce: str = "sum") -> torch.Tensor:
    """Sum (or max) of ``weight`` over every cell upstream of each cell, itself included.

    receiver: [B, H, W] flat indices (a forest whose roots receive themselves); weight: [B, H, W].
    Pointer doubling: after stage k each cell holds the total of cells fewer than 2^k steps
    upstream; stage k+1 adds the totals of cells exactly 2^k steps upstream, found by jumping
    receivers 2^k ahead. log2(longest flow path) stages of O(N) work, batched, device-agnostic.
    """
    if reduce not in ("sum", "amax"):
        raise ValueError(f"reduce must be 'sum' or 'amax', got {reduce!r}")
    b, h, w = receiver.shape
    n = h * w
    base = (torch.arange(b, device=receiver.device) * n)[:, None]
    rec = receiver.reshape(b, n) + base
    flat = torch.arange(b * n, device=receiver.device)
    sink = b * n  # a dummy node collecting everything that leaves through a root
    jump = torch.where(rec.reshape(-1) == flat, torch.full_like(flat, sink), rec.reshape(-1))
    jump = torch.cat([jump, jump.new_tensor([sink])])
    total = torch.cat([weight.reshape(-1), weight.new_zeros(1)])
    while True:
        active = jump[:-1] != sink
        if not bool(active.any()):
            break
        if reduce == "sum":
            total = total + torch.zeros_like(total).scatter_add(0, jump, total)
        else:
            total = total.scatter_reduce(0, jump, total, reduce="amax", include_self=True)
        total[-1] = 0
        jump = jump[jump]
    return total[:-1].reshape(b, h, w)


def propagate_affine(receiver: torch.Tensor, a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """Solve ``x_i = a_i + b_i * x_receiver(i)`` down every flow path (roots: ``x = a``).

    receiver, a, b: [B, H, W]. This is the implicit stream-power update of Braun & Willett (2013)
    without its sequential upstream sweep: affine maps compose, so pointer doubling solves all
    cells in log2(longest path) O(N) stages.
    """
    bsz, h, w = receiver.shape
    n = h * w
    rec = (receiver.reshape(bsz, n) + (torch.arange(bsz, device=receiver.device) * n)[:, None]).reshape(-1)
    root = rec == torch.arange(bsz * n, device=receiver.device)
    a = a.reshape(-1).clone()
    b = torch.where(root, torch.zeros_like(a), b.reshape(-1))
    jump = rec.clone()
    while not bool((jump[jump] == jump).all()):
        # (a_i, b_i) o (a_j, b_j) with j = jump(i): x_i = a_i + b_i a_j + b_i b_j x_jump(j)
        a = a + b * a[jump]
        b = b * b[jump]
        jump = jump[jump]
    a = a + b * a[jump]  # final hop onto the roots
    return a.reshape(bsz, h, w)


def path_length_to_outlet(receiver: torch.Tensor, distance: torch.Tensor) -> torch.Tensor:
    """Flow-path distance (m) from every cell to its outlet. receiver, distance: [B, H, W].

    Pointer jumping: each cell adds the distance already summed by the cell 2^k steps down.
    """
    b, h, w = receiver.shape
    n = h * w
    rec = (receiver.reshape(b, n) + (torch.arange(b, device=receiver.device) * n)[:, None]).reshape(-1)
    flat = torch.arange(b * n, device=receiver.device)
    d = torch.where(rec == flat, torch.zeros_like(distance.reshape(-1)), distance.reshape(-1))
    jump = rec.clone()
    while not bool((jump[jump] == jump).all()):
        d = d + d[jump]
        jump = jump[jump]
    return d.reshape(b, h, w)


def drainage_area(z: torch.Tensor, cell_size: float, fill: bool = True) -> torch.Tensor:
    """Upstream drainage area (m², own cell included) after optional depression filling.

    z: [B, H, W] -> [B, H, W] in z's dtype.
    """
    zf = fill_depressions(z) if fill else z
    receiver, _, _ = d8_receivers(zf, cell_size)
    area = torch.full(z.shape, cell_size * cell_size, dtype=zf.dtype, device=z.device)
    return accumulate(receiver, area).to(z.dtype)
