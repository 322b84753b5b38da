"""core's SyncBatchNorm.convert_sync_batchnorm on vision's CNNs (one process: it is BatchNorm2d)."""

import numpy as np

from tinytorch.core import Tensor, manual_seed
from tinytorch.core.nn.parallel import SyncBatchNorm
from tinytorch.vision import BatchNorm2d, DeepCNN


def test_converted_cnn_keeps_parameters_keys_and_outputs():
    manual_seed(0)
    model = DeepCNN((3, 32, 32), 10)
    x = Tensor(np.random.default_rng(0).normal(size=(4, 3, 32, 32)).astype(np.float32))
    before = model(x).numpy()
    keys, params = list(model.state_dict()), [id(p) for p in model.parameters()]
    running = {k: v.copy() for k, v in model.state_dict().items() if "running" in k}
    manual_seed(0)
    reference = DeepCNN((3, 32, 32), 10)
    reference(x)  # the same one update of the running statistics as `before`
    converted = SyncBatchNorm.convert_sync_batchnorm(model)
    assert not any(isinstance(m, BatchNorm2d) for m in converted.modules())
    assert sum(isinstance(m, SyncBatchNorm) for m in converted.modules()) == 5
    assert list(converted.state_dict()) == keys and [id(p) for p in converted.parameters()] == params
    np.testing.assert_allclose(converted(x).numpy(), reference(x).numpy(), atol=2e-5)
    for key, value in converted.state_dict().items():  # the second update matches BatchNorm2d's
        if "running" in key:
            assert not np.array_equal(value, running[key])
            np.testing.assert_allclose(value, reference.state_dict()[key], rtol=1e-5, atol=1e-6)
    assert before.shape == (4, 10)
