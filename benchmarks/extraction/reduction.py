"""At most N features per layer: a fixed, seeded sparse random projection.

Why a random projection and not PCA. PCA needs a fitting pass over the activations of a fitting set
and memory O(n_components x layer size) (ConvRNN conv5 at 28x28x128 has 100k units per step; Brain-Score's
PCA over many layers is what drives its tens-to-hundreds of GB), and its basis depends on which images
were used to fit it. A seeded random projection depends only on (layer size, N, seed): it is applied batch
by batch while the model runs, needs no second pass, gives the same basis for every stimulus set (so
cached features and scores are comparable across benchmarks), and by the Johnson-Lindenstrauss lemma
preserves the inner products the linear mappings (PLS, ridge) rely on. We use the very sparse variant
(Li, Hastie & Church 2006; sklearn's ``SparseRandomProjection`` with density 1/sqrt(D)): only
about N*sqrt(D) non-zeros, i.e. a few MB even for 100k-unit layers.
Layers with at most N units are kept as they are (identity).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Optional

import numpy as np
import torch


@dataclass
class RandomProjection:
    n_features: int
    n_components: int
    seed: int = 0

    def __post_init__(self):
        self.identity = self.n_features <= self.n_components
        self._matrix: Optional[torch.Tensor] = None
        if not self.identity:
            from sklearn.random_projection import SparseRandomProjection

            projection = SparseRandomProjection(n_components=self.n_components, random_state=self.seed)
            projection.fit(np.zeros((1, self.n_features), dtype=np.float32))  # only the shape is used
            csr = projection.components_.tocsr().astype(np.float32)
            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message="Sparse CSR tensor support is in beta")
                self._matrix = torch.sparse_csr_tensor(
                    torch.from_numpy(csr.indptr.astype(np.int64)), torch.from_numpy(csr.indices.astype(np.int64)),
                    torch.from_numpy(csr.data), size=csr.shape, check_invariants=True)

    @property
    def out_features(self) -> int:
        return self.n_features if self.identity else self.n_components

    def __call__(self, flat: torch.Tensor) -> torch.Tensor:
        """(samples, n_features) -> (samples, out_features), on the CPU in float32."""
        flat = flat.detach().to("cpu", torch.float32)
        if self.identity:
            return flat
        # a bfloat16 fast path calls this inside its CPU autocast: the sparse product has no bfloat16 kernel
        with torch.autocast("cpu", enabled=False):
            return (self._matrix @ flat.T).T

    def settings(self) -> dict:
        return {"method": "sparse_random_projection", "n_components": self.n_components, "seed": self.seed}
