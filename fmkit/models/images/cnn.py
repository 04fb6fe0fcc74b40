"""The seed's small CNN: two blocks of (conv-bn-relu x2, max-pool), dense 512, dropout 0.5.

Random init; about 1.7M parameters at 28x28 (the dense layer holds most of them).
"""

from __future__ import annotations

from torch import nn

from fmkit.models.images.preprocess import Conv2d, ImageClassifier, Preprocess


def _block(in_channels: int, out_channels: int) -> nn.Sequential:
    layers = []
    for index in range(2):
        layers += [Conv2d(in_channels if index == 0 else out_channels, out_channels, 3, padding=1, bias=False),
                   nn.BatchNorm2d(out_channels), nn.ReLU(inplace=True)]
    return nn.Sequential(*layers, nn.MaxPool2d(2), nn.Dropout(0.25))


class SmallCNN(nn.Module):
    def __init__(self, in_channels: int, num_classes: int, input_size: int, widths=(32, 64), dense: int = 512,
                 dropout: float = 0.5):
        super().__init__()
        self.features = nn.Sequential(_block(in_channels, widths[0]), _block(widths[0], widths[1]))
        side = input_size // 4  # two 2x2 poolings
        self.classifier = nn.Sequential(nn.Flatten(), nn.Linear(widths[1] * side * side, dense), nn.ReLU(inplace=True),
                                        nn.Dropout(dropout), nn.Linear(dense, num_classes))

    def forward(self, x):
        return self.classifier(self.features(x))


def build(config: dict) -> ImageClassifier:
    """``config``: channels, num_classes, input_size, normalisation, dropout (see the bundle's image_config.json)."""
    mean, std = config["normalisation"]["mean"], config["normalisation"]["std"]
    network = SmallCNN(config["channels"], config["num_classes"], config["input_size"],
                       dropout=config.get("dropout") if config.get("dropout") is not None else 0.5)
    return ImageClassifier(Preprocess(config["channels"], config["channels"], config["input_size"], mean, std), network)


def load_pretrained(model: ImageClassifier) -> dict:
    return {"name": "cnn", "weights": "random init", "digest": None}


def replace_head(model: ImageClassifier, num_classes: int) -> None:
    """A freshly initialised last layer for ``num_classes`` (continuing from a bundle with other labels)."""
    old = model.network.classifier[-1]
    model.network.classifier[-1] = nn.Linear(old.in_features, num_classes)
