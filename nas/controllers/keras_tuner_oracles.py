"""keras-tuner's three oracles, kept in memory (no project files), the Bayesian one with its
acquisition restarts as a knob and a leaner GP `predict` (see `nas.controllers.keras_tuner`'s notes)."""

from __future__ import annotations

import functools

import numpy as np

from nas.controllers.keras_tuner_space import _keras_tuner


@functools.lru_cache(maxsize=None)
def oracle_classes() -> dict[str, type]:
    """keras-tuner's three oracles, without project files; built on first use (imports keras-tuner)."""
    import scipy.optimize
    from scipy.linalg import solve_triangular
    from sklearn.gaussian_process import GaussianProcessRegressor

    kt = _keras_tuner()

    class InMemory:
        """No project directory: the controller's `state()` is what persists (see the module notes)."""

        def save(self):
            pass

        def _save_trial(self, trial):
            pass

    class LeanGaussianProcess(GaussianProcessRegressor):
        """scikit-learn's GP regressor; `predict` on a fitted model skips the per-call input checks.

        The same formula as `GaussianProcessRegressor.predict` (Rasmussen & Williams, Alg. 2.1, with
        `normalize_y`) for a float64 matrix and a single target; anything else goes to scikit-learn.
        `fit` keeps its data, so a restored controller refits the GP exactly as it was.
        """

        def fit(self, X, y):
            self.fit_data = (np.array(X, dtype=np.float64), np.array(y, dtype=np.float64))
            return super().fit(X, y)

        def predict(self, X, return_std=False, return_cov=False):
            if (return_cov or not hasattr(self, "X_train_") or not isinstance(X, np.ndarray) or X.ndim != 2
                    or X.dtype != np.float64 or X.shape[1] != self.X_train_.shape[1] or np.ndim(self._y_train_std)):
                return super().predict(X, return_std=return_std, return_cov=return_cov)
            k_trans = self.kernel_(X, self.X_train_)
            y_mean = self._y_train_std * (k_trans @ self.alpha_) + self._y_train_mean
            if not return_std:
                return y_mean
            v = solve_triangular(self.L_, k_trans.T, lower=True, check_finite=False)
            y_var = self.kernel_.diag(X).copy()
            y_var -= np.einsum("ij,ji->i", v.T, v)
            y_var[y_var < 0] = 0.0  # numerical noise (scikit-learn warns here; the acquisition does not care)
            return y_mean, np.sqrt(y_var * self._y_train_std ** 2)

    class BayesianOracle(InMemory, kt.oracles.BayesianOptimizationOracle):
        def __init__(self, *args, acquisition_restarts: int = 50, **kwargs):
            self.acquisition_restarts = acquisition_restarts
            super().__init__(*args, **kwargs)

        def _make_gpr(self):
            return LeanGaussianProcess(**super()._make_gpr().get_params(deep=False))

        def populate_space(self, trial_id):
            # keras-tuner 1.4.8's BayesianOptimizationOracle.populate_space, except `num_restarts`.
            completed_trials = [t for t in self.trials.values() if t.status == "COMPLETED"]
            dimensions = len(self.hyperparameters.space)
            num_initial_points = self.num_initial_points or max(3 * dimensions, 3)
            if len(completed_trials) < num_initial_points:
                return self._random_populate_space()
            x, y = self._vectorize_trials()
            x = np.nan_to_num(x, posinf=0, neginf=0)
            y = np.nan_to_num(y, posinf=0, neginf=0)
            self.gpr.fit(x, y)

            def _upper_confidence_bound(x):
                x = x.reshape(1, -1)
                mu, sigma = self.gpr.predict(x, return_std=True)
                return mu - self.beta * sigma

            optimal_val = float("inf")
            optimal_x = None
            num_restarts = self.acquisition_restarts
            bounds = self._get_hp_bounds()
            x_seeds = self._random_state.uniform(bounds[:, 0], bounds[:, 1], size=(num_restarts, bounds.shape[0]))
            for x_try in x_seeds:
                result = scipy.optimize.minimize(_upper_confidence_bound, x0=x_try, bounds=bounds, method="L-BFGS-B")
                result_fun = result.fun if np.isscalar(result.fun) else result.fun[0]
                if result_fun < optimal_val:
                    optimal_val = result_fun
                    optimal_x = result.x
            values = self._vector_to_values(optimal_x)
            return {"status": kt.engine.trial.TrialStatus.RUNNING, "values": values}

    class HyperbandOracle(InMemory, kt.oracles.HyperbandOracle):
        pass

    class RandomOracle(InMemory, kt.oracles.RandomSearchOracle):
        pass

    return {"bayesian": BayesianOracle, "hyperband": HyperbandOracle, "random": RandomOracle,
            "gp": LeanGaussianProcess}
