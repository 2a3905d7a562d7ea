"""A whole split as tensors on the training device, with resizing, augmentation and normalisation
done there in batches: after the one-time decode the data path costs no host work per epoch."""
import torch
import torch.nn.functional as F


class DeviceSplit:
    """uint8 images (N, 3, H, W) and int64 labels on `device`."""

    def __init__(self, images, labels, device):
        self.images = torch.as_tensor(images).permute(0, 3, 1, 2).contiguous().to(device)
        self.labels = torch.as_tensor(labels, dtype=torch.long).to(device)

    def __len__(self) -> int:
        return len(self.labels)

    def batches(self, batch_size: int, generator: torch.Generator | None = None, drop_last: bool = False):
        """(uint8 images, labels) batches; shuffled when a generator is given."""
        n = len(self)
        order = torch.randperm(n, generator=generator).to(self.labels.device) if generator is not None else None
        stop = n - n % batch_size if drop_last and n >= batch_size else n
        for start in range(0, stop, batch_size):
            idx = slice(start, start + batch_size) if order is None else order[start:start + batch_size]
            yield self.images[idx], self.labels[idx]


class DeviceTransform:
    """uint8 (B, 3, h, w) -> normalised float (B, 3, size, size), on the images' device.

    Args:
        size: model input resolution; images are resized to it (bicubic, antialiased) when they differ.
        mean, std: normalisation, from the model's `pretrained_cfg`.
        hflip: random horizontal flips in training.
        crop_scale: RandomResizedCrop-style scale range in training (None: no crop).
    """

    def __init__(self, size: int, mean, std, hflip: bool = False, crop_scale=None):
        self.size, self.hflip, self.crop_scale = size, hflip, crop_scale
        self.mean = torch.tensor(mean).view(1, 3, 1, 1) * 255
        self.std = torch.tensor(std).view(1, 3, 1, 1) * 255

    def __call__(self, x: torch.Tensor, train: bool = False, generator: torch.Generator | None = None):
        x = x.float()
        if train and self.crop_scale is not None:
            x = self._random_crop(x, generator)
        if x.shape[-2:] != (self.size, self.size):
            x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", antialias=True, align_corners=False)
        if train and self.hflip:
            flip = torch.rand(x.shape[0], generator=generator).to(x.device) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        if self.mean.device != x.device:  # moved once, not per batch
            self.mean, self.std = self.mean.to(x.device), self.std.to(x.device)
        return (x - self.mean) / self.std

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
