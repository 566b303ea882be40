"""Model registry: output size equals input size at 128 and 224 px; encoder weights from a file."""

import pytest
import torch

from saltnet.models import MODELS, build_model, get_model_spec
from saltnet.models.encoders import build_encoder


@pytest.mark.parametrize("name", sorted(MODELS))
@pytest.mark.parametrize("size", [128, 224])
def test_output_has_input_size(name, size):
    """Models that pad (resunet_scse) take and return the native 101 px; the others `size` px."""
    side = get_model_spec(name).input_size(size, 101)
    model = build_model(name, "none", size).eval()
    with torch.no_grad():
        out = model(torch.randn(1, 3, side, side))
    assert out.shape == (1, 1, side, side)


@pytest.mark.parametrize("size", [64, 128, 160])
def test_resunet_pads_up_or_resizes_down_and_keeps_101_px(size):
    model = build_model("resunet_scse", "none", size).eval()
    seen = []
    model.net.register_forward_hook(lambda module, args, out: seen.append((args[0].shape[-1], out.shape[-1])))
    with torch.no_grad():
        assert model(torch.randn(2, 3, 101, 101)).shape == (2, 1, 101, 101)
    assert seen == [(size, size)]  # the network itself ran at `size`


def test_resunet_padding_is_a_reflection_and_the_crop_is_centred():
    """A network that returns its input's first channel shows what FitToSize fed it and kept."""
    from saltnet.models.resunet import FitToSize

    x = torch.randn(1, 3, 101, 101)
    fitted = FitToSize(torch.nn.Conv2d(3, 1, 1, bias=False), 128)
    fed = []
    fitted.net.register_forward_hook(lambda module, args, out: fed.append(args[0]))
    with torch.no_grad():
        fitted.net.weight.copy_(torch.tensor([1.0, 0, 0]).view(1, 3, 1, 1))
        assert torch.equal(fitted(x), x[:, :1])  # the crop returns exactly the original pixels
    padded = fed[0][0, 0]  # 13 rows/columns before, 14 after, mirrored without repeating the edge
    assert torch.equal(padded[13:114, 13:114], x[0, 0])
    assert torch.equal(padded[13 - 5, 13:114], x[0, 0, 5]) and torch.equal(padded[113 + 7, 13:114], x[0, 0, 100 - 7])
    assert torch.equal(padded[13:114, 13 - 3], x[0, 0, :, 3])


def test_resunet_trains_from_random_init_only():
    with pytest.raises(ValueError, match="encoder_weights: none"):
        build_model("resunet_scse", "imagenet", 128)


def test_hypercolumn_takes_sizes_that_are_not_multiples_of_32():
    model = build_model("hypercolumn_se_resnext50", "none", 101).eval()
    with torch.no_grad():
        assert model(torch.randn(1, 3, 101, 101)).shape == (1, 1, 101, 101)


def test_weights_do_not_depend_on_size():
    """Progressive resizing loads the 128 px state dict into the 224 px model."""
    small = build_model("unet_resnet34", "none", 128)
    build_model("unet_resnet34", "none", 224).load_state_dict(small.state_dict())


def test_unknown_model_and_too_small_size():
    with pytest.raises(KeyError, match="unet_resnet34"):
        build_model("unet_vgg", "none", 128)
    with pytest.raises(ValueError, match="at least 32"):
        build_model("unet_resnet34", "none", 16)


@pytest.mark.parametrize("name", ["resnet34", "se_resnext50_32x4d"])
def test_encoder_weights_from_a_file(tmp_path, name):
    source = build_encoder(name, "none")
    path = tmp_path / "encoder.pth"
    torch.save(source.state_dict(), path)
    loaded = build_encoder(name, str(path))
    for key, value in source.state_dict().items():
        if key.startswith(("fc.", "last_linear.")):
            continue  # the classifier head is not part of the encoder
        assert torch.equal(loaded.state_dict()[key], value), key


def test_model_built_on_a_weights_file_uses_it(tmp_path):
    encoder = build_encoder("resnet34", "none")
    path = tmp_path / "resnet34.pth"
    torch.save({"state_dict": encoder.state_dict()}, path)
    model = build_model("unet_resnet34", str(path), 64)
    assert torch.equal(model.state_dict()["layers.0.0.weight"], encoder.state_dict()["conv1.weight"])


def test_bad_weights_files_name_the_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.pth"):
        build_encoder("resnet34", str(tmp_path / "missing.pth"))
    garbage = tmp_path / "garbage.pth"
    garbage.write_bytes(b"not a checkpoint")
    with pytest.raises(ValueError, match="garbage.pth"):
        build_encoder("resnet34", str(garbage))
    wrong = tmp_path / "wrong.pth"
    torch.save(build_encoder("resnet34", "none").state_dict(), wrong)
    with pytest.raises(ValueError, match="does not fit"):
        build_encoder("se_resnext50_32x4d", str(wrong))


def test_the_config_schema_offers_exactly_the_registered_models_and_losses():
    """The schema's enums and the registries are two lists: a model added to one only fails here."""
    from pathlib import Path

    from saltnet.config.resolve import load_schema
    from saltnet.training.losses import LOSSES

    schema = load_schema(Path(__file__).resolve().parents[1] / "workflow/schemas/config.schema.yaml")
    assert set(schema["properties"]["model"]["enum"]) == set(MODELS)
    assert set(schema["definitions"]["loss"]["enum"]) == set(LOSSES)
