"""Backbones written in the repository: torchvision-compatible names and sizes, output shapes."""

from __future__ import annotations

import torch
from model_helpers import one_torch_thread  # noqa: F401

from hmrt.train.models.backbones import (
    MobileFeatureNet,
    MobileNetV2,
    PoseHighResolutionNet,
    ResNet,
    build_feature_backbone,
)


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def test_resnets_match_torchvision_sizes_and_names():
    # torchvision resnet18 / resnet50 (ImageNet classifier) have exactly these counts.
    r18, r50 = ResNet(18, num_classes=1000), ResNet(50, num_classes=1000)
    assert _count(r18) == 11_689_512
    assert _count(r50) == 25_557_032
    keys = set(r18.state_dict())
    assert {"conv1.weight", "bn1.running_var", "layer1.0.conv2.weight", "fc.bias"} <= keys
    assert {"layer2.0.downsample.0.weight", "layer4.1.bn2.num_batches_tracked"} <= keys
    assert "layer3.5.conv3.weight" in r50.state_dict()
    with torch.no_grad():
        assert r18(torch.randn(1, 3, 64, 64)).shape == (1, 1000)
        trunk = ResNet(18, in_channels=21, num_stages=3)
        assert trunk(torch.randn(2, 21, 56, 56)).shape == (2, 256, 4, 4)


def test_mobilenet_v2_matches_torchvision_names():
    net = MobileNetV2(1.0, out_indices=(17,))
    # torchvision mobilenet_v2: 3,504,872 params, minus classifier (1,281,000) and
    # features.18 (1x1 conv 320->1280 + BN: 412,160).
    assert _count(net) == 3_504_872 - 1_281_000 - 412_160
    keys = set(net.state_dict())
    assert {"features.0.0.weight", "features.1.conv.0.0.weight", "features.1.conv.1.weight"} <= keys
    assert {"features.2.conv.0.0.weight", "features.2.conv.3.running_mean"} <= keys


def test_feature_backbones_give_one_dense_map():
    x = torch.randn(1, 3, 224, 224)
    with torch.no_grad():
        assert MobileFeatureNet(0.5, 32).eval()(x).shape == (1, 32, 28, 28)
        hr = PoseHighResolutionNet(width=18).eval()
        assert hr(x).shape == (1, 18, 56, 56)
    state = hr.state_dict()
    assert "stage4.2.fuse_layers.0.3.0.weight" in state  # last module keeps only branch 0
    assert "stage4.2.fuse_layers.1.0.0.0.weight" not in state
    assert "stage4.1.fuse_layers.3.0.2.0.weight" in state
    assert _count(build_feature_backbone("hrnet_w48", 48)) == 63_594_912
