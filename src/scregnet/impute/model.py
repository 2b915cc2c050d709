"""scDTL-style imputation network (maths only; data handling is in ``data``, loops in ``train``).

Four parts, after scDTL (Brief Bioinform 2024, bbae555):

1. :class:`BulkDAE`: a denoising autoencoder over the gene vector, pretrained on (corrupted) bulk
   RNA profiles to reconstruct the clean profile.
2. Domain adaptation: the same encoder is then trained on single cells with a reconstruction loss
   plus the maximum mean discrepancy (:func:`mmd_rbf`) between bulk and single-cell latent codes.
3. :class:`UNet1D`: a 1D U-Net over the gene axis (long kernels; coarse and fine features).
4. :class:`CrossChannelAttention`: CBAM-style channel + spatial attention over the two branches'
   concatenated feature maps, decoded to the imputed expression by :class:`ScDTL`.

Our extension (not in the paper): a **neighbour channel**. Besides the cell's own profile the
network receives, as a second input channel, the pooled profile of the cell's ``k`` nearest
neighbours (PCA of the log-normalised counts, the cell itself excluded; see
:func:`scregnet.impute.data.neighbour_graph`). Both branches see both channels, and a gene-wise
output layer (:class:`GeneWiseHead`, one weight vector per gene) lets the network learn, per gene,
how much to trust the cell's own counts against its neighbours' -- the weighting that fixed
smoothing methods (kNN smoothing, MAGIC) hard-code. ``use_neighbours=False`` is the paper's
single-channel network. What each part adds on real cells (molecular cross-validation on
CellBench) is measured in docs/benchmarks.md (ablation); every part is one flag away.

All tensors are log1p(counts per 10k); ``G`` = genes, ``B`` = batch, ``H``/``L`` = hidden/latent
width, ``C`` = channels, ``I`` = input channels: the cell's own profile, its depth
``log1p(TARGET_SUM / library)`` (the value one count takes; constant over genes) and, with the
neighbour channel, the neighbour profile.

Default widths are scaled for ~2,000 genes on a CPU (hidden 256, latent 64, U-Net channels
4/8/16 with kernels 15/31/63 over patches of 8 genes, 4 fusion channels per gene; halved from
8/16/32 and 8 for speed, see docs/benchmarks.md); the paper's 4096 -> 2048 encoder was sized
for 4,000 genes on a GPU. Every width is a field of :class:`ImputeConfig`.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import torch
import torch.nn.functional as F
from torch import nn

from scregnet.impute.config import ImputeConfig


class BulkDAE(nn.Module):
    """Denoising autoencoder: gene vector -> latent code -> reconstructed gene vector (logits)."""

    def __init__(self, n_genes: int, hidden_dim: int, latent_dim: int, dropout: float) -> None:
        super().__init__()
        self.encoder = nn.Sequential(
            nn.Linear(n_genes, hidden_dim),
            nn.LayerNorm(hidden_dim),
            nn.GELU(),
            nn.Dropout(dropout),
            nn.Linear(hidden_dim, latent_dim),
        )
        self.decoder = nn.Sequential(
            nn.Linear(latent_dim, hidden_dim),
            nn.LayerNorm(hidden_dim),
            nn.GELU(),
            nn.Linear(hidden_dim, n_genes),
        )

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        # (B, G) -> (B, L)
        return self.encoder(x)

    def decode(self, z: torch.Tensor) -> torch.Tensor:
        # (B, L) -> (B, G); pre-activation (softplus gives the expression)
        return self.decoder(z)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        # (B, G) -> latent (B, L), reconstruction logits (B, G)
        z = self.encode(x)
        return z, self.decode(z)


class Pointwise(nn.Module):
    """A 1x1 convolution (channel mixing at each position) as an einsum, fast on CPUs."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(c_in)
        self.weight = nn.Parameter(torch.empty(c_out, c_in).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.empty(c_out).uniform_(-bound, bound))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (C_out, C_in) @ (B, C_in, N) -> (B, C_out, N) (a broadcast batched matmul, no copies)
        return torch.matmul(self.weight, x) + self.bias.unsqueeze(-1)


class LongConv1d(nn.Module):
    """Depthwise 1D convolution with a long kernel, 'same' padding, computed by FFT.

    Equivalent to ``nn.Conv1d(c, c, kernel, padding='same', groups=c)`` (cross-correlation) but
    O(N log N) per channel, which is what makes kernels of 15-127 genes affordable on a CPU.
    """

    def __init__(self, channels: int, kernel: int) -> None:
        super().__init__()
        self.kernel = kernel
        bound = 1.0 / math.sqrt(kernel)
        self.weight = nn.Parameter(torch.empty(channels, kernel).uniform_(-bound, bound))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C, N) -> (B, C, N)
        n, k = x.shape[-1], self.kernel
        size = 1 << (n + k - 2).bit_length()  # power of two >= N + k - 1 (no circular wrap)
        spec = torch.fft.rfft(x.float(), n=size) * torch.fft.rfft(
            self.weight.flip(-1).float(), n=size
        )
        y = torch.fft.irfft(spec, n=size)  # full convolution, (B, C, size)
        left = (k - 1) // 2
        return y[..., left : left + n].to(x.dtype) + self.bias.unsqueeze(-1)


class ConvBlock(nn.Module):
    """Depthwise-separable 1D convolution block with a residual path.

    A pointwise (1x1) projection mixes channels, a long depthwise convolution looks along the gene
    axis, then group norm and GELU. Separable convolutions keep long kernels affordable on a CPU
    (cost ~ C * (C + log N) per position instead of C * C * k).
    """

    def __init__(self, c_in: int, c_out: int, kernel: int) -> None:
        super().__init__()
        self.pointwise = Pointwise(c_in, c_out)
        self.depthwise = LongConv1d(c_out, kernel)
        self.norm = nn.GroupNorm(1, c_out)
        self.act = nn.GELU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # (B, C_in, N) -> (B, C_out, N)
        h = self.pointwise(x)
        return self.act(self.norm(h + self.depthwise(h)))


class UNet1D(nn.Module):
    """1D U-Net over the gene axis.

    A strided "patch" convolution first embeds groups of ``patch`` neighbouring genes (the gene
    order puts co-expressed genes together), then each level applies a long-kernel block, max-pools
    by 2 on the way down and interpolates back up with skip connections; a transposed convolution
    returns to one position per gene. With patch 4 and kernels 15/31/63 the three levels see about
    60, 250 and 1,000 genes: fine and coarse features.
    """

    def __init__(
        self,
        channels: tuple[int, ...],
        kernels: tuple[int, ...],
        patch: int,
        in_channels: int = 1,
        out_channels: int | None = None,
    ) -> None:
        super().__init__()
        self.patch = patch
        c0 = channels[0]
        out = c0 if out_channels is None else out_channels
        # patch embedding: each group of `patch` genes x `in_channels` -> c0 channels; the
        # transposed patch convolution maps back to `out` channels per gene
        bound = 1 / math.sqrt(patch * in_channels)
        self.stem = nn.Parameter(torch.empty(c0, in_channels, patch).uniform_(-bound, bound))
        self.stem_bias = nn.Parameter(torch.zeros(c0))
        self.unpatch = nn.Parameter(
            torch.empty(out, c0, patch).uniform_(-1 / math.sqrt(c0), 1 / math.sqrt(c0))
        )
        self.unpatch_bias = nn.Parameter(torch.zeros(out))
        ins = (channels[0], *channels[:-1])
        self.down = nn.ModuleList(
            ConvBlock(ci, co, k) for ci, co, k in zip(ins, channels, kernels, strict=True)
        )
        self.up = nn.ModuleList(
            ConvBlock(channels[i] + channels[i + 1], channels[i], kernels[i])
            for i in range(len(channels) - 1)
        )
        self.out_channels = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # x: (B, I, G)
        n_genes = x.shape[-1]
        pad = (-n_genes) % self.patch
        # (B, I, G) -> (B, I, N_0, patch), N_0 = (G + pad) / patch -> (B, C_0, N_0)
        patches = F.pad(x, (0, pad)).reshape(x.shape[0], x.shape[1], -1, self.patch)
        h = torch.einsum("binp,cip->bcn", patches, self.stem) + self.stem_bias.unsqueeze(-1)
        skips: list[torch.Tensor] = []
        for level, block in enumerate(self.down):
            if level > 0:
                # (B, C, N) -> (B, C, ceil(N / 2))
                h = F.max_pool1d(h, kernel_size=2, ceil_mode=True)
            h = block(h)  # (B, C_level, N_level)
            skips.append(h)
        for level in range(len(self.up) - 1, -1, -1):
            skip = skips[level]
            # (B, C_{l+1}, N_{l+1}) -> (B, C_{l+1}, N_l), then concat -> (B, C_l + C_{l+1}, N_l)
            h = F.interpolate(h, size=skip.shape[-1], mode="linear", align_corners=False)
            h = self.up[level](torch.cat([skip, h], dim=1))  # (B, C_l, N_l)
        # (B, C_0, N_0) -> (B, O, N_0, patch) -> (B, O, G + pad) -> (B, O, G)
        out = torch.einsum("bcn,ocp->bonp", h, self.unpatch).reshape(
            h.shape[0], self.out_channels, -1
        )
        return out[..., :n_genes] + self.unpatch_bias.unsqueeze(-1)


class CrossChannelAttention(nn.Module):
    """CBAM: channel attention (pooled over genes) then spatial attention (pooled over channels)."""

    def __init__(self, channels: int, reduction: int, spatial_kernel: int) -> None:
        super().__init__()
        mid = max(1, channels // reduction)
        self.mlp = nn.Sequential(nn.Linear(channels, mid), nn.GELU(), nn.Linear(mid, channels))
        self.spatial_kernel = spatial_kernel
        bound = 1.0 / math.sqrt(2 * spatial_kernel)
        self.spatial = nn.Parameter(torch.empty(2, spatial_kernel).uniform_(-bound, bound))
        self.spatial_bias = nn.Parameter(torch.zeros(()))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # channel attention: (B, C, G) -> avg/max over G (B, C) -> MLP -> (B, C, 1)
        weights = torch.sigmoid(self.mlp(h.mean(dim=-1)) + self.mlp(h.amax(dim=-1)))
        h = h * weights.unsqueeze(-1)
        # spatial attention: (B, C, G) -> [mean, max] over C (B, 2, G) -> conv -> (B, 1, G)
        pooled = torch.cat([h.mean(dim=1, keepdim=True), h.amax(dim=1, keepdim=True)], dim=1)
        k = self.spatial_kernel
        # 'same' padding, (B, 2, G + k - 1) -> (B, 1, G) (cross-correlation, as nn.Conv1d)
        padded = F.pad(pooled, ((k - 1) // 2, k // 2))
        logits = F.conv1d(padded, self.spatial.unsqueeze(0)) + self.spatial_bias
        return h * torch.sigmoid(logits)


class GeneWiseHead(nn.Module):
    """Per-gene linear read-out of the fused features: one weight vector and bias per gene.

    Convolutions and pointwise layers share weights across genes; this layer is where the network
    can learn gene-specific weightings (e.g. own counts vs neighbours). Initialised to a shared
    read-out plus zero gene-specific deviations.
    """

    def __init__(self, channels: int, n_genes: int) -> None:
        super().__init__()
        bound = 1.0 / math.sqrt(channels)
        self.shared = nn.Parameter(torch.empty(channels).uniform_(-bound, bound))
        self.weight = nn.Parameter(torch.zeros(n_genes, channels))
        self.bias = nn.Parameter(torch.zeros(n_genes))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # (B, C, G) -> (B, G)
        w = (self.weight + self.shared).t()  # (C, G)
        return (h * w).sum(dim=1) + self.bias


class ImputeOutput(NamedTuple):
    imputed: torch.Tensor  # (B, G) log1p of the expected expression in counts per 10k
    latent: torch.Tensor  # (B, L) bulk-encoder code
    dae: torch.Tensor  # (B, G) non-negative DAE-branch reconstruction


class ScDTL(nn.Module):
    """Bulk-pretrained DAE branch + 1D U-Net branch, fused by cross-channel attention.

    The output is ``log1p`` of the cell's expected expression in counts per 10k (the mean of a
    negative binomial count model with per-gene dispersion ``exp(log_theta)``, see
    :func:`nb_nll`). ``log_gene_scale`` (a buffer, 0 until
    :func:`scregnet.impute.train.fit_gene_scale` sets it after training) is added to each gene's
    output logit, which multiplies that gene's expected expression by ``exp(log_gene_scale)``
    (``expm1(softplus(z + c)) = exp(c) * expm1(softplus(z))``).
    """

    def __init__(self, config: ImputeConfig) -> None:
        super().__init__()
        self.config = config
        c = config
        self.dae = BulkDAE(c.n_genes, c.hidden_dim, c.latent_dim, c.dropout)
        f = c.fusion_channels
        # DAE branch features: [input channels..., reconstruction] -> F channels
        self.dae_proj = Pointwise(c.in_channels + 1, f)
        self.unet: UNet1D | None = None
        fused = f
        if c.use_unet:
            # (B, I, G) -> (B, F, G): the transposed patch convolution projects to F channels
            self.unet = UNet1D(c.unet_channels, c.unet_kernels, c.unet_patch, c.in_channels, f)
            fused = 2 * f
        self.attention: CrossChannelAttention | None = None
        if c.use_attention:
            self.attention = CrossChannelAttention(fused, c.attention_reduction, c.spatial_kernel)
        self.mix = Pointwise(fused, f)
        self.head = GeneWiseHead(f, c.n_genes)
        # per-gene negative binomial dispersion (log of the inverse overdispersion theta)
        self.log_theta = nn.Parameter(torch.full((c.n_genes,), math.log(10.0)))
        self.log_gene_scale: torch.Tensor
        self.register_buffer("log_gene_scale", torch.zeros(c.n_genes))

    def forward(
        self, x: torch.Tensor, depth: torch.Tensor, neighbours: torch.Tensor | None = None
    ) -> ImputeOutput:
        # x: own profile (B, G); depth: log1p(TARGET_SUM / library) (B, 1);
        # neighbours: pooled neighbour profile (B, G), or None
        channels = [x, depth.expand_as(x)]
        if self.config.use_neighbours:
            if neighbours is None:
                msg = "this model needs the neighbour profile"
                raise ValueError(msg)
            channels.append(neighbours)
        inputs = torch.stack(channels, dim=1)  # (B, I, G)
        z, recon = self.dae(x)  # (B, L), (B, G)
        dae = F.softplus(recon)
        # (B, I + 1, G) -> (B, F, G)
        feats = self.dae_proj(torch.cat([inputs, dae.unsqueeze(1)], dim=1))
        if self.unet is not None:
            # (B, I, G) -> (B, C_0, G) -> (B, F, G); concat -> (B, 2F, G)
            feats = torch.cat([feats, self.unet(inputs)], dim=1)
        if self.attention is not None:
            feats = self.attention(feats)
        fused = F.gelu(self.mix(feats))  # (B, F or 2F, G) -> (B, F, G)
        # gene-wise read-out (B, G), residual on the DAE logits
        out = F.softplus(recon + self.head(fused) + self.log_gene_scale)
        return ImputeOutput(imputed=out, latent=z, dae=dae)


def nb_nll(
    counts: torch.Tensor, mean: torch.Tensor, log_theta: torch.Tensor, eps: float = 1e-8
) -> torch.Tensor:
    """Negative binomial negative log-likelihood per entry (mean/dispersion parametrisation).

    ``counts`` and ``mean`` (B, G) are counts at the same depth; ``log_theta`` (G,) the log
    inverse overdispersion (variance ``mean + mean^2 / theta``). Returns (B, G).
    """
    theta = torch.exp(log_theta).unsqueeze(0)  # (1, G)
    log_theta_mu = torch.log(theta + mean + eps)
    return -(
        torch.lgamma(counts + theta)
        - torch.lgamma(theta)
        - torch.lgamma(counts + 1.0)
        + theta * (torch.log(theta + eps) - log_theta_mu)
        + counts * (torch.log(mean + eps) - log_theta_mu)
    )


def mmd_rbf(
    a: torch.Tensor, b: torch.Tensor, *, scales: tuple[float, ...] = (0.5, 1.0, 2.0)
) -> torch.Tensor:
    """Maximum mean discrepancy between samples ``a`` (N, L) and ``b`` (M, L), Gaussian kernels.

    The paper uses one Gaussian kernel with gamma 1000 on its own latent scale; here the bandwidth
    follows the median pairwise squared distance (times ``scales``), which keeps the statistic
    informative whatever the latent scale. Biased (V-statistic) estimate, >= 0.
    """
    x = torch.cat([a, b], dim=0).float()  # (N + M, L)
    d2 = torch.cdist(x, x).pow(2)  # (N + M, N + M)
    bandwidth = d2.detach().median().clamp_min(1e-6)
    k = sum(torch.exp(-d2 / (bandwidth * s)) for s in scales)
    assert isinstance(k, torch.Tensor)
    n = a.shape[0]
    kaa, kbb, kab = k[:n, :n], k[n:, n:], k[:n, n:]
    return (kaa.mean() + kbb.mean() - 2 * kab.mean()).clamp_min(0.0)
