"""perf counts vision's Conv1d and padding modes: a conv on the padded input, padding itself free.

Root-level because it imports vision and perf together (perf never imports vision).
"""

from __future__ import annotations

import numpy as np

from tinytorch.core import Tensor
from tinytorch.perf import FLOPsCounter
from tinytorch.vision import Conv1d, Conv2d


def test_traced_conv1d_is_a_conv2d_of_height_one():
    # (2, 4, 9), Cout 6, k 3, stride 2, padding 2, groups 2: Lout = (9 + 4 - 2 - 1) // 2 + 1 = 6
    # matmul 2·B·Cout·Lout·(Cin/groups)·k = 2·2·6·6·2·3 = 864; bias B·Cout·Lout = 72
    trace = FLOPsCounter().trace(Conv1d(4, 6, 3, stride=2, padding=2, groups=2),
                                 Tensor(np.ones((2, 4, 9), np.float32)))
    assert trace.unknown_ops == {}
    assert trace.forward.matmul_flops == 864 and trace.forward.elementwise_flops == 72


def test_traced_reflect_padded_conv2d_counts_the_conv_of_the_padded_input():
    # (1, 3, 8, 8) reflect-padded by 1 to 10x10, then a 3x3 conv with no padding: 8x8 outputs;
    # matmul 2·1·5·8·8·3·9 = 17280 (as zero padding 1 would give), padding 0 FLOPs, bias 320
    conv = Conv2d(3, 5, 3, padding=1, padding_mode="reflect")
    trace = FLOPsCounter().trace(conv, Tensor(np.ones((1, 3, 8, 8), np.float32)))
    assert trace.unknown_ops == {}
    assert trace.forward.matmul_flops == 17280 and trace.forward.elementwise_flops == 320
