#!/usr/bin/env python3
"""Writes the PyTorch golden files the Rust tests compare against.

Run once with PyTorch, torchvision, safetensors and numpy installed (the
tests never need Python):

    python tests/golden/make_golden.py tests/golden

For each network (LeNet5, ResNet20 option A, the all-convolutional net,
torchvision's SqueezeNet 1.1) it writes

- `<net>.weights.safetensors.gz`: `safetensors.torch.save_file(net.state_dict())`,
  gzipped, so the names and layouts are PyTorch's own (`fc1.weight` is
  `[out, in]`; batch norm has `weight`, `bias`, `running_mean`,
  `running_var`). `num_batches_tracked` (int64) is left out: the crate's
  safetensors files are f32 only and PyTorch's `load_state_dict` refills it.
- `<net>.io.safetensors`: a fixed input batch `x` (batch 2, small images),
  the logits in eval mode (`logits_eval`) and, where train mode differs
  and is deterministic, in train mode (`logits_train`; ResNet20, whose
  batch norm then uses batch statistics) with the running statistics after
  that one train-mode forward pass (`after_train.<name>`).

To keep the files small (under 2 MB in all), every weight is a small
integer times a power of two (k * 2^e, |k| <= 3), exactly representable in
f32, so the files compress; the networks still compute in f32 and the
values are random, seeded. The definitions follow the paper's code:
LeNet5 and the all-convolutional net as `src/models/{lenet5,allconv}.rs`
describe, ResNet20 as akamaster/pytorch_resnet_cifar10 (option-A
shortcuts), SqueezeNet 1.1 from torchvision with 2 classes.
"""

import gzip
import math
import os
import sys

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchvision
from safetensors.torch import save, save_file


class LeNet5(nn.Module):
    def __init__(self, channels=1, n_classes=10):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 20, 5)
        self.conv2 = nn.Conv2d(20, 50, 5)
        self.fc1 = nn.Linear(4 * 4 * 50, 500)
        self.fc2 = nn.Linear(500, n_classes)

    def forward(self, x):
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = x.flatten(1)
        return self.fc2(F.relu(self.fc1(x)))


# akamaster/pytorch_resnet_cifar10, resnet.py (option A).
class LambdaLayer(nn.Module):
    def __init__(self, lambd):
        super().__init__()
        self.lambd = lambd

    def forward(self, x):
        return self.lambd(x)


class BasicBlock(nn.Module):
    expansion = 1

    def __init__(self, in_planes, planes, stride=1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, kernel_size=3, stride=stride, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.shortcut = nn.Sequential()
        if stride != 1 or in_planes != planes:
            self.shortcut = LambdaLayer(
                lambda x: F.pad(x[:, :, ::2, ::2], (0, 0, 0, 0, planes // 4, planes // 4), "constant", 0)
            )

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        out += self.shortcut(x)
        return F.relu(out)


class ResNet(nn.Module):
    def __init__(self, block, num_blocks, num_classes=10):
        super().__init__()
        self.in_planes = 16
        self.conv1 = nn.Conv2d(3, 16, kernel_size=3, stride=1, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = self._make_layer(block, 16, num_blocks[0], stride=1)
        self.layer2 = self._make_layer(block, 32, num_blocks[1], stride=2)
        self.layer3 = self._make_layer(block, 64, num_blocks[2], stride=2)
        self.linear = nn.Linear(64, num_classes)

    def _make_layer(self, block, planes, num_blocks, stride):
        strides = [stride] + [1] * (num_blocks - 1)
        layers = []
        for stride in strides:
            layers.append(block(self.in_planes, planes, stride))
            self.in_planes = planes * block.expansion
        return nn.Sequential(*layers)

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer1(out)
        out = self.layer2(out)
        out = self.layer3(out)
        out = F.avg_pool2d(out, out.size()[3])
        out = out.view(out.size(0), -1)
        return self.linear(out)


def resnet20(n_classes=10):
    return ResNet(BasicBlock, [3, 3, 3], n_classes)


# The authors' all-convolutional net for the remote-sensing data.
class AllConv(nn.Module):
    def __init__(self, channels=36, n_classes=13):
        super().__init__()
        self.conv1 = nn.Conv2d(channels, 64, 3, stride=2)
        self.conv12 = nn.Conv2d(64, 64, 1)
        self.conv2 = nn.Conv2d(64, 128, 3, stride=2)
        self.conv22 = nn.Conv2d(128, 128, 1)
        self.conv3 = nn.Conv2d(128, 256, 3, stride=2)
        self.conv32 = nn.Conv2d(256, 512, 1)
        self.convo = nn.Conv2d(512, n_classes, 1)
        self.pad = nn.ReflectionPad2d(1)
        self.pool = nn.AdaptiveAvgPool2d(1)

    def forward(self, x):
        for conv in [self.conv1, self.conv12, self.conv2, self.conv22, self.conv3, self.conv32]:
            x = F.leaky_relu(conv(self.pad(x)))
        x = self.convo(x)
        return self.pool(x).flatten(1)


def quantise_(net, gen):
    """Every parameter and running statistic to k * 2^e, |k| <= 3, seeded."""
    with torch.no_grad():
        for name, t in net.state_dict().items():
            if not t.is_floating_point():
                continue
            if name.endswith("running_var"):
                # Positive, around 1: 0.5, 0.75, ..., 2.
                t.copy_(0.25 * torch.randint(2, 9, t.shape, generator=gen).float())
                continue
            if name.endswith("running_mean"):
                t.copy_(0.125 * torch.randint(-3, 4, t.shape, generator=gen).float())
                continue
            if t.dim() >= 2:
                fan_in = t[0].numel()
                std = math.sqrt(2.0 / fan_in)
            elif name.endswith("bn1.weight") or name.endswith("bn2.weight"):
                # Batch-norm scales around 1.
                t.copy_(0.25 * torch.randint(2, 7, t.shape, generator=gen).float())
                continue
            else:
                std = 0.1
            # k uniform on -3..3 has std 2.
            e = round(math.log2(std / 2.0))
            k = torch.randint(-3, 4, t.shape, generator=gen).float()
            t.copy_(k * 2.0**e)


def write(out, name, net, x, train_mode):
    weights = {k: v.contiguous() for k, v in net.state_dict().items() if not k.endswith("num_batches_tracked")}
    raw = save(weights)
    with gzip.GzipFile(os.path.join(out, f"{name}.weights.safetensors.gz"), "wb", mtime=0, compresslevel=9) as f:
        f.write(raw)
    io = {"x": x.contiguous()}
    net.eval()
    with torch.no_grad():
        io["logits_eval"] = net(x).contiguous()
    if train_mode:
        net.train()
        with torch.no_grad():
            io["logits_train"] = net(x).contiguous()
        for k, v in net.state_dict().items():
            if k.endswith("running_mean") or k.endswith("running_var"):
                io[f"after_train.{k}"] = v.contiguous()
        net.eval()
    save_file(io, os.path.join(out, f"{name}.io.safetensors"))
    print(name, {k: tuple(v.shape) for k, v in io.items() if not k.startswith("after_train")})
    print("  logits_eval", io["logits_eval"].tolist())


def main():
    out = sys.argv[1] if len(sys.argv) > 1 else os.path.dirname(os.path.abspath(__file__))
    torch.manual_seed(0)
    gen = torch.Generator().manual_seed(2022)

    net = LeNet5(1, 10)
    quantise_(net, gen)
    x = torch.rand(2, 1, 28, 28, generator=gen)
    write(out, "lenet5", net, x, train_mode=False)

    net = resnet20(10)
    quantise_(net, gen)
    x = torch.randn(2, 3, 32, 32, generator=gen)
    write(out, "resnet20", net, x, train_mode=True)

    # 4 bands, 12x12: 14 -> 6 -> 8 -> 3 (after padding and strides) ...
    net = AllConv(4, 13)
    quantise_(net, gen)
    x = torch.randn(2, 4, 12, 12, generator=gen)
    write(out, "allconv", net, x, train_mode=False)

    # 35x35: 17 -> 8 -> 4 -> 2, the last two pools with a partial
    # (ceil-mode) window. The classifier ends in a ReLU: a positive bias
    # keeps the logits off zero.
    net = torchvision.models.squeezenet1_1(num_classes=2)
    quantise_(net, gen)
    with torch.no_grad():
        net.classifier[1].bias.copy_(torch.tensor([0.5, 0.25]))
    x = torch.randn(2, 3, 35, 35, generator=gen)
    # Dropout makes train mode random: eval only.
    write(out, "squeezenet1_1", net, x, train_mode=False)


if __name__ == "__main__":
    main()
