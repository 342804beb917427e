"""Linear CKA with the unbiased minibatch HSIC estimator.

Centered Kernel Alignment (Kornblith et al., ICML 2019, "Similarity of Neural Network
Representations Revisited") with the unbiased HSIC_1 estimator of Song et al. (JMLR 2012),
accumulated over minibatches as in Nguyen, Raghu & Kornblith (ICLR 2021, "Do Wide and Deep Networks
Learn the Same Things?"): CKA = Σ_b HSIC_1(K_b, L_b) / sqrt(Σ_b HSIC_1(K_b, K_b) · Σ_b HSIC_1(L_b, L_b)).

Vectorised form: HSIC_1(K, L) = <U(K), U(L)> / (n (n - 3)), where U is the "U-centering" of
Székely & Rizzo (2014). Each layer's Gram matrix is U-centred once per minibatch and flattened; one
matrix product then gives HSIC_1 for every (ancestry layer, pseudo-descendant layer) pair.
Everything is computed in float64.
"""

from __future__ import annotations

import torch

from learngene.errors import ConfigError


def gram(x: torch.Tensor) -> torch.Tensor:
    """Linear-kernel Gram matrix of `x` (n, d) in float64."""
    x = x.reshape(len(x), -1).double()  # (n, d)
    return x @ x.T  # (n, n)


def u_center(k: torch.Tensor) -> torch.Tensor:
    """U-centre a Gram matrix (zero diagonal; Székely & Rizzo 2014), batched over leading dims.

    Args:
        k: (..., n, n) symmetric Gram matrices with n >= 4.
    """
    n = k.shape[-1]
    assert n >= 4, "U-centering needs at least 4 samples"
    k = k.double().clone()
    k.diagonal(dim1=-2, dim2=-1).zero_()
    row = k.sum(-1, keepdim=True) / (n - 2)  # (..., n, 1)
    total = k.sum((-2, -1), keepdim=True) / ((n - 1) * (n - 2))  # (..., 1, 1)
    u = k - row - row.transpose(-2, -1) + total
    u.diagonal(dim1=-2, dim2=-1).zero_()
    return u


def unbiased_hsic(k: torch.Tensor, l: torch.Tensor) -> torch.Tensor:  # noqa: E741
    """Unbiased HSIC_1 estimator (Song et al. 2012) of two (n, n) Gram matrices, n >= 4."""
    n = k.shape[-1]
    if n < 4:
        raise ConfigError(f"the unbiased HSIC needs at least 4 samples, got {n}")
    return (u_center(k) * u_center(l)).sum((-2, -1)) / (n * (n - 3))


def linear_cka(x: torch.Tensor, y: torch.Tensor, unbiased: bool = True) -> float:
    """Full-batch linear CKA of features `x` (n, d1) and `y` (n, d2) of the same n inputs.

    Args:
        x: features, any trailing shape (flattened per sample).
        y: features of the same samples.
        unbiased: the unbiased HSIC_1 estimator (default) or the biased one of Kornblith et al.
    """
    if len(x) != len(y):
        raise ConfigError(f"CKA needs features of the same inputs: got {len(x)} and {len(y)} samples")
    k, l = gram(x), gram(y)  # noqa: E741
    if unbiased:
        kl, kk, ll = unbiased_hsic(k, l), unbiased_hsic(k, k), unbiased_hsic(l, l)
    else:
        h = torch.eye(len(k), dtype=k.dtype) - 1.0 / len(k)
        kc, lc = h @ k @ h, h @ l @ h
        kl, kk, ll = (kc * lc).sum(), (kc * kc).sum(), (lc * lc).sum()
    return float(kl / (kk * ll).clamp_min(1e-300).sqrt())


class MinibatchCKA:
    """Accumulates linear CKA between every row layer and every column layer over minibatches.

    Call `update(row_feats, col_feats)` once per minibatch with the features of the same images,
    then `value()` for the (rows, cols) CKA matrix.
    """

    def __init__(self) -> None:
        self.cross: torch.Tensor | None = None  # (R, C) Σ_b HSIC_1(K_r, L_c)
        self.row_self: torch.Tensor | None = None  # (R,) Σ_b HSIC_1(K_r, K_r)
        self.col_self: torch.Tensor | None = None  # (C,)
        self.batches = 0
        self.samples = 0

    @staticmethod
    def _u_vectors(feats: list[torch.Tensor]) -> torch.Tensor:
        """U-centred Gram matrices of each layer's features, flattened: (layers, n * n)."""
        grams = torch.stack([gram(f) for f in feats])  # (layers, n, n)
        return u_center(grams).flatten(1)

    @torch.no_grad()
    def update(self, row_feats: list[torch.Tensor], col_feats: list[torch.Tensor]) -> None:
        """Add one minibatch: lists of (n, ...) features, one tensor per layer, same n images."""
        n = len(row_feats[0])
        assert all(len(f) == n for f in [*row_feats, *col_feats]), "features of different batch sizes"
        if n < 4:
            return  # the unbiased estimator is undefined; a tiny trailing batch is skipped
        a = self._u_vectors(row_feats)  # (R, n*n)
        b = self._u_vectors(col_feats)  # (C, n*n)
        scale = 1.0 / (n * (n - 3))
        cross, rs, cs = (a @ b.T) * scale, (a * a).sum(1) * scale, (b * b).sum(1) * scale
        if self.cross is None:
            self.cross, self.row_self, self.col_self = cross, rs, cs
        else:
            self.cross += cross
            self.row_self += rs
            self.col_self += cs
        self.batches += 1
        self.samples += n

    def value(self) -> torch.Tensor:
        """The (R, C) CKA matrix (float64, on the CPU)."""
        if self.cross is None:
            raise ConfigError("no minibatch of at least 4 images was seen; use more images")
        denom = (self.row_self[:, None] * self.col_self[None, :]).clamp_min(1e-300).sqrt()
        return (self.cross / denom).cpu()
