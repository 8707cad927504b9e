import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from trainers.costs import dense_flops
from trainers.discovery import discover, discover_layers
from trainers.models import MLP, SmallCNN


def test_cnn_layers_in_execution_order_with_classifier_last():
    layers = discover_layers(SmallCNN(1, 10), (1, 8, 8))
    assert [l.name for l in layers] == ["features.0", "features.2", "features.5",
                                        "classifier.1", "classifier.3"]
    assert [l.is_classifier for l in layers] == [False] * 4 + [True]
    conv2 = layers[1]
    assert conv2.kind == "conv2d" and conv2.weight_shape == (32, 16, 3, 3)
    assert conv2.macs == 32 * 8 * 8 * 16 * 9          # out elements x in-channels x kernel
    assert conv2.in_elems == 16 * 64 and conv2.out_elems == 32 * 64


def test_mlp_layers_and_macs():
    layers = discover_layers(MLP(64, 10, hidden=(32,)), (1, 8, 8))
    assert [(l.kind, l.params, l.macs) for l in layers] == [("linear", 2048, 2048),
                                                           ("linear", 320, 320)]


def test_dense_flops_equal_flop_counter_mode():
    for model, shape in [(SmallCNN(1, 10), (1, 8, 8)), (MLP(64, 10), (1, 8, 8)),
                         (SmallCNN(3, 7, width=8, input_size=16), (3, 16, 16))]:
        counter = FlopCounterMode(display=False)
        with counter:
            model(torch.zeros(1, *shape))
        assert dense_flops(discover_layers(model, shape)) == counter.get_total_flops()


def test_recurrent_weights_say_what_is_counted():
    """An LSTM's weights were said to be 'not used in a matrix product (a token table)'."""
    class Net(nn.Module):
        def __init__(self):
            super().__init__()
            self.emb, self.fc = nn.Embedding(20, 8), nn.Linear(16, 3)
            self.rnn = nn.LSTM(8, 16, batch_first=True)

        def forward(self, x):
            out, _ = self.rnn(self.emb(x.long().clamp(0, 19)))
            return self.fc(out[:, -1])

    reasons = {w.name: w.reason for w in discover(Net(), (12,)).others}
    assert reasons["rnn.weight_ih_l0"].startswith("recurrent layer (LSTM): not a searched kind; "
                                                  "FlopCounterMode has no formula")
