"""The Edge TPU cost model (`sim`): no TensorFlow, consistent with its .tflite reader, fitted sensibly."""

import dataclasses
import subprocess
import sys

import pytest

from latency import make_latency_model
from latency.edgetpu_fit import NOMINAL, fit_constants, leave_one_out_ms
from latency.edgetpu_model import ONCHIP_PARAM_BYTES, EdgeTpuCostModel, Work, load_constants, predict_work_ms, spec_work
from search_space import REGISTRY
from search_space.counting import model_cost


def test_sim_predicts_without_tensorflow():
    code = ("import sys; from latency import make_latency_model; from search_space import REGISTRY; "
            "m = make_latency_model('sim'); print(m.predict_ms(REGISTRY['efficientnet-edgetpu-S'])); "
            "assert 'tensorflow' not in sys.modules")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) > 0


def test_published_orderings():
    sim = make_latency_model("sim")
    s, m, l = (sim.predict_ms(REGISTRY[f"efficientnet-edgetpu-{x}"]) for x in "SML")
    assert s < m < l
    # published: S 5.1 ms, L 21.3 ms on the USB Accelerator; the fit is within 25% of both
    assert s == pytest.approx(5.1, rel=0.25)
    assert l == pytest.approx(21.3, rel=0.25)


def test_spec_work_matches_counting_macs():
    spec = REGISTRY["efficientnet-edgetpu-S"]
    assert spec_work(spec).total_macs == model_cost(spec).macs


def test_streaming_only_beyond_onchip_memory():
    c = load_constants()
    small = Work(macs=(10**9, 0, 0, 0), ops=10, param_bytes=ONCHIP_PARAM_BYTES)
    big = dataclasses.replace(small, param_bytes=ONCHIP_PARAM_BYTES + 50_000_000)
    extra = predict_work_ms(big, c) - predict_work_ms(small, c)
    assert extra == pytest.approx(1e3 * 50_000_000 / (c.host_mb_per_s * 1e6))
    assert predict_work_ms(dataclasses.replace(small, param_bytes=1000), c) == pytest.approx(predict_work_ms(small, c))


def test_fit_recovers_constants_from_their_own_predictions():
    truth = dataclasses.replace(NOMINAL, efficiency_conv=0.3, efficiency_depthwise=0.05, op_overhead_ms=0.03,
                                host_mb_per_s=300.0)
    works = [Work(macs=(a * 10**9, b * 10**8, c * 10**9, 10**6), ops=n, param_bytes=p * 10**6, io_bytes=150_000)
             for a, b, c, n, p in [(1, 2, 1, 60, 5), (4, 0, 3, 80, 25), (15, 0, 0, 24, 138), (0, 3, 1, 30, 4),
                                   (2, 5, 2, 100, 9), (8, 1, 4, 90, 12), (1, 8, 1, 120, 6), (0, 1, 0, 20, 2)]]
    measured = [predict_work_ms(w, truth) for w in works]
    fitted = fit_constants(works, measured, prior_sigma=100.0)  # a negligible prior: the data decide
    for w, m in zip(works, measured):
        assert predict_work_ms(w, fitted) == pytest.approx(m, rel=0.01)
    assert fitted.host_mb_per_s == pytest.approx(300.0, rel=0.05)
    loo = leave_one_out_ms(works, measured, prior_sigma=100.0)
    assert all(abs(p / m - 1) < 0.05 for p, m in zip(loo, measured))


def test_breakdown_sums_to_prediction():
    model = EdgeTpuCostModel()
    work = spec_work(REGISTRY["efficientnet-edgetpu-L"])
    assert sum(model.breakdown_ms(work).values()) == pytest.approx(predict_work_ms(work, model.constants))
