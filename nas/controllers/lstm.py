"""An autoregressive LSTM policy over decision sequences, with backpropagation through time in numpy.

Step t reads the embedding of the option chosen at step t-1 (a learned start vector at step 0),
updates one LSTM cell shared by all steps, and scores step t's options with its own softmax head,
as in the NASNet / MNAS controllers. `forward` replays given decisions (teacher forcing) for a
batch and keeps what `backward` needs; `backward` turns gradients on every step's logits into
gradients on every parameter. Parameters start uniform in [-init_range, init_range], NASNet's choice.
"""

from __future__ import annotations

import numpy as np

from nas.controllers.base import log_softmax, sample_categorical


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * x))  # overflow-free


class LstmPolicy:
    def __init__(self, cardinalities: list[int], hidden_size: int, embedding_size: int,
                 rng: np.random.Generator, init_range: float = 0.1):
        self.cardinalities = list(cardinalities)
        self.hidden, self.embedding = hidden_size, embedding_size
        shapes = {"start": (embedding_size,), "W": (embedding_size + hidden_size, 4 * hidden_size),
                  "b": (4 * hidden_size,)}
        for t, n in enumerate(self.cardinalities):
            shapes[f"head{t}.W"] = (hidden_size, n)
            shapes[f"head{t}.b"] = (n,)
            if t + 1 < len(self.cardinalities):
                shapes[f"embed{t}"] = (n, embedding_size)  # the input of step t + 1
        self.params = {k: rng.uniform(-init_range, init_range, size=s) for k, s in shapes.items()}

    def _cell(self, x: np.ndarray, h: np.ndarray, c: np.ndarray):
        H = self.hidden
        xh = np.concatenate([x, h], axis=1)
        z = xh @ self.params["W"] + self.params["b"]
        i, f, o = _sigmoid(z[:, :H]), _sigmoid(z[:, H:2 * H]), _sigmoid(z[:, 3 * H:])
        g = np.tanh(z[:, 2 * H:3 * H])
        c_new = f * c + i * g
        tanh_c = np.tanh(c_new)
        h_new = o * tanh_c
        return h_new, c_new, (xh, i, f, g, o, c, tanh_c, h_new)

    def _logits(self, t: int, h: np.ndarray) -> np.ndarray:
        return h @ self.params[f"head{t}.W"] + self.params[f"head{t}.b"]

    def sample(self, rng: np.random.Generator) -> tuple[list[int], float]:
        """One decision sequence drawn step by step, and its log-probability."""
        x = self.params["start"][None, :]
        h = c = np.zeros((1, self.hidden))
        actions, logp = [], 0.0
        for t in range(len(self.cardinalities)):
            h, c, _ = self._cell(x, h, c)
            logprobs = log_softmax(self._logits(t, h)[0])
            a = sample_categorical(rng, np.exp(logprobs))
            actions.append(a)
            logp += float(logprobs[a])
            if t + 1 < len(self.cardinalities):
                x = self.params[f"embed{t}"][a][None, :]
        return actions, logp

    def forward(self, actions: np.ndarray) -> tuple[list[np.ndarray], list]:
        """Logits of every step for a batch of given sequences `actions` [B, T], and the cache."""
        batch = actions.shape[0]
        x = np.broadcast_to(self.params["start"], (batch, self.embedding))
        h = c = np.zeros((batch, self.hidden))
        logits, cache = [], []
        for t in range(len(self.cardinalities)):
            h, c, saved = self._cell(x, h, c)
            logits.append(self._logits(t, h))
            cache.append(saved)
            if t + 1 < len(self.cardinalities):
                x = self.params[f"embed{t}"][actions[:, t]]
        return logits, cache

    def backward(self, actions: np.ndarray, cache: list, dlogits: list[np.ndarray]) -> dict[str, np.ndarray]:
        """Gradients of `sum_t <dlogits[t], logits[t]>` with respect to every parameter."""
        H, E = self.hidden, self.embedding
        grads = {k: np.zeros_like(v) for k, v in self.params.items()}
        dh_next = dc_next = np.zeros((actions.shape[0], H))
        for t in reversed(range(len(self.cardinalities))):
            xh, i, f, g, o, c_prev, tanh_c, h = cache[t]
            grads[f"head{t}.W"] += h.T @ dlogits[t]
            grads[f"head{t}.b"] += dlogits[t].sum(axis=0)
            dh = dlogits[t] @ self.params[f"head{t}.W"].T + dh_next
            dc = dh * o * (1.0 - tanh_c ** 2) + dc_next
            dz = np.concatenate([dc * g * i * (1.0 - i), dc * c_prev * f * (1.0 - f),
                                 dc * i * (1.0 - g ** 2), dh * tanh_c * o * (1.0 - o)], axis=1)
            grads["W"] += xh.T @ dz
            grads["b"] += dz.sum(axis=0)
            dxh = dz @ self.params["W"].T
            dh_next, dc_next = dxh[:, E:], dc * f
            if t == 0:
                grads["start"] += dxh[:, :E].sum(axis=0)
            else:
                np.add.at(grads[f"embed{t - 1}"], actions[:, t - 1], dxh[:, :E])
        return grads
