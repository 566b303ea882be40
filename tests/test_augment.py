"""Device augmentation: image and mask move together; flips only when p is 0; never a vertical flip."""

import pytest
import torch
import torch.nn.functional as F

from saltnet.data.augment import AugmentSettings, augment_batch


def blobs(n: int = 8, size: int = 101) -> torch.Tensor:
    """(n, 1, size, size) float masks of smooth random blobs."""
    torch.manual_seed(0)
    return (F.avg_pool2d(torch.rand(n, 1, size, size), 15, 1, 7) > 0.5).float()


def test_image_and_mask_get_the_same_geometry():
    masks = blobs()
    images = masks.expand(-1, 3, -1, -1).contiguous(memory_format=torch.channels_last)
    settings = AugmentSettings(p=1.0, shift=0.1, scale=0.1, rotate=10)
    torch.manual_seed(1)
    x, (y,) = augment_batch(images, [masks], settings)
    assert not torch.equal(y, masks), "p=1 must change the masks"
    assert torch.equal((x[:, :1] > 0.5).float(), y)
    assert x.is_contiguous(memory_format=torch.channels_last)
    assert set(y.unique().tolist()) <= {0.0, 1.0}


def test_geometry_fits_a_mask_at_another_resolution():
    """The image may be resized to the model's size while the mask stays at 101 px."""
    masks = blobs()
    images = F.interpolate(masks, size=(64, 64), mode="bilinear", align_corners=False).expand(-1, 3, -1, -1)
    settings = AugmentSettings(hflip=False, p=1.0, shift=0.1, scale=0.1, rotate=10)

    def mismatch(x, y):
        small = (F.interpolate(y, size=(64, 64), mode="bilinear", align_corners=False) > 0.5).float()
        return ((x[:, :1] > 0.5).float() != small).float().mean()

    torch.manual_seed(2)
    x, (y,) = augment_batch(images.contiguous(), [masks], settings)
    _, (other,) = augment_batch(images.contiguous(), [masks], settings)  # another draw of the geometry
    assert mismatch(x, y) < 0.25 * mismatch(x, other)  # the same draw differs at boundary pixels only


@pytest.mark.parametrize("seed", range(3))
def test_flips_only_when_p_is_zero_and_never_vertical(seed):
    masks = blobs()
    torch.manual_seed(seed)
    x, (y,) = augment_batch(masks.clone(), [masks.clone()], AugmentSettings(p=0.0, rotate=30, brightness=1.0))
    for out, original in zip(x, masks):
        assert torch.equal(out, original) or torch.equal(out, original.flip(-1))
    assert torch.equal(x, y)


def test_brightness_moves_images_not_masks():
    masks = blobs()
    torch.manual_seed(3)
    x, (y,) = augment_batch(masks.clone(), [masks.clone()], AugmentSettings(hflip=False, p=1.0, brightness=0.5))
    shift = (x - masks).flatten(1)
    assert torch.equal(y, masks)
    assert torch.allclose(shift, shift[:, :1].expand_as(shift)) and shift.abs().max() > 0
