import pytest
import torch

from personcut.config import ModelConfig
from personcut.model import UNet, count_parameters


@pytest.mark.parametrize("size", [(333, 250), (17, 31), (64, 64), (1, 5)])
def test_any_size_keeps_its_shape(size):
    model = UNet(ModelConfig(width=4, depth=3)).eval()
    with torch.inference_mode():
        out = model(torch.rand(2, 3, *size))
    assert out.shape == (2, 1, *size)


def test_classic_config_has_the_papers_parameter_count():
    # Ronneberger et al.: ~31.0M; 31,037,633 with BatchNorm and one output channel.
    assert count_parameters(UNet(ModelConfig(width=64, depth=4))) == 31_037_633


def test_paper_form_without_batchnorm():
    model = UNet(ModelConfig(width=8, batch_norm=False))
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules())
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert all(c.bias is not None for c in convs)


def test_structure_matches_the_paper():
    model = UNet(ModelConfig(width=8, depth=4))
    assert len(model.encoder) == 5 and len(model.decoder) == 4
    ups = [m for m in model.modules() if isinstance(m, torch.nn.ConvTranspose2d)]
    assert all(u.kernel_size == (2, 2) and u.stride == (2, 2) for u in ups)
    assert model.head.kernel_size == (1, 1) and model.head.out_channels == 1
