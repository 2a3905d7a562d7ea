"""A whole split as tensors on the training device, with resizing, augmentation and normalisation
done there in batches: after the one-time decode the data path costs no host work per epoch."""
import math

import torch
import torch.nn.functional as F


class DeviceSplit:
    """uint8 images (N, 3, H, W) and int64 labels on `device`."""

    def __init__(self, images, labels, device):
        self.images = torch.as_tensor(images).permute(0, 3, 1, 2).contiguous().to(device)
        self.labels = torch.as_tensor(labels, dtype=torch.long).to(device)

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int, generator: torch.Generator | None = None):
        """(uint8 images, labels) batches; shuffled when a generator is given."""
        n = len(self)
        order = torch.randperm(n, generator=generator).to(self.labels.device) if generator is not None else None
        for start in range(0, n, batch_size):
            idx = slice(start, start + batch_size) if order is None else order[start:start + batch_size]
            yield self.images[idx], self.labels[idx]


INTERPOLATIONS = {"bicubic": dict(mode="bicubic", antialias=True, align_corners=False),
                  "bilinear": dict(mode="bilinear", antialias=True, align_corners=False),
                  "nearest": dict(mode="nearest")}
CROP_MODES = ("center", "squash")


class DeviceTransform:
    """uint8 (B, 3, h, w) -> normalised float (B, 3, size, size), on the images' device.

    Training resizes the whole image to size x size (after an optional random crop); evaluation does the
    same when crop_pct is None, else timm's eval transform: resize to floor(size / crop_pct) (the shorter
    side, keeping the aspect ratio; both sides with crop_mode 'squash'), then a center size x size crop.

    Args:
        size: model input resolution.
        mean, std: normalisation (timm's data config for the model).
        interpolation: 'bicubic', 'bilinear' or 'nearest' (antialiased when shrinking, like PIL).
        crop_pct: evaluation's center-crop fraction (None: no crop).
        crop_mode: 'center' or 'squash', as timm's eval transform.
        hflip: random horizontal flips in training.
        crop_scale: RandomResizedCrop-style scale range in training (None: no crop).
    """

    def __init__(self, size: int, mean, std, interpolation: str = "bicubic", crop_pct: float | None = None,
                 crop_mode: str = "center", hflip: bool = False, crop_scale=None):
        if interpolation not in INTERPOLATIONS:
            raise ValueError(f"interpolation {interpolation!r} cannot run on the device; "
                             f"supported: {', '.join(INTERPOLATIONS)}")
        if crop_pct is not None and crop_mode not in CROP_MODES:
            raise ValueError(f"crop_mode {crop_mode!r} not supported; supported: {', '.join(CROP_MODES)}")
        if crop_pct is not None and not 0 < crop_pct <= 1:
            raise ValueError(f"crop_pct must be in (0, 1], got {crop_pct}")
        self.size, self.hflip, self.crop_scale = size, hflip, crop_scale
        self.interpolation, self.crop_pct, self.crop_mode = interpolation, crop_pct, crop_mode
        self._mean_std = ([float(v) for v in mean], [float(v) for v in std])
        self.mean = torch.tensor(mean).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std).view(1, 3, 1, 1) * 255

    @property
    def data_config(self) -> dict:
        """What this transform does, in timm's data-config terms (crop_pct None: resized, never cropped)."""
        return {"input_size": [3, self.size, self.size], "interpolation": self.interpolation,
                "mean": list(self._mean_std[0]), "std": list(self._mean_std[1]),
                "crop_pct": self.crop_pct, "crop_mode": self.crop_mode if self.crop_pct is not None else None}

    def __call__(self, x: torch.Tensor, train: bool = False, generator: torch.Generator | None = None):
        x = x.float()
        if train and self.crop_scale is not None:
            x = self._random_crop(x, generator)
        if train or self.crop_pct is None:
            x = self._resize(x, (self.size, self.size))
        else:
            x = self._resize_center_crop(x)
        if train and self.hflip:
            flip = torch.rand(x.shape[0], generator=generator).to(x.device) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        if self.mean.device != x.device:  # moved once, not per batch
            self.mean, self.std = self.mean.to(x.device), self.std.to(x.device)
        return (x - self.mean) / self.std

    def _resize(self, x, hw):
        if tuple(x.shape[-2:]) == tuple(hw):
            return x
        return F.interpolate(x, size=tuple(hw), **INTERPOLATIONS[self.interpolation])

    def _resize_center_crop(self, x):
        """timm's eval geometry, with torchvision's Resize and CenterCrop rounding."""
        scale = math.floor(self.size / self.crop_pct)
        h, w = x.shape[-2:]
        if self.crop_mode == "squash":
            hw = (scale, scale)
        else:
            hw = (scale, int(scale * w / h)) if h <= w else (int(scale * h / w), scale)
        x = self._resize(x, hw)
        top, left = int(round((hw[0] - self.size) / 2.0)), int(round((hw[1] - self.size) / 2.0))
        return x[..., top:top + self.size, left:left + self.size]

    def _random_crop(self, x, generator):
        """One random square crop per batch element (area fraction in crop_scale), via affine grids."""
        b = x.shape[0]
        lo, hi = self.crop_scale
        scale = (lo + (hi - lo) * torch.rand(b, generator=generator)).sqrt()
        shift = (1 - scale)[:, None] * (2 * torch.rand(b, 2, generator=generator) - 1)  # (b, 2): x and y
        theta = torch.zeros(b, 2, 3)
        theta[:, 0, 0], theta[:, 1, 1] = scale, scale
        theta[:, :, 2] = shift
        grid = F.affine_grid(theta.to(x.device), list(x.shape), align_corners=False)
        return F.grid_sample(x, grid, mode="bilinear", padding_mode="reflection", align_corners=False)
